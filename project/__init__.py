"""What the whole repository shares and no stage owns: where its files go, and how a long job shows progress.

The Lambda never imports this package (its image holds lambda_fn/ alone); every other room may.
"""
