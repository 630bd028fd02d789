"""The catalog tools: what a shop runs on its own machine around the deployed function. They call the function
(catalog/client.py: one photo; catalog/tag.py: a whole catalog) and work through what it answers (the review
page). They import the function's package for the answer's shape and its limits; the function never imports
them, and its image does not hold them.
"""
