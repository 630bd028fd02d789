"""What the tests and the benchmarks share: hostile inputs, servers on 127.0.0.1, the container engine, SAM CLI,
the EMF specification, the tiny dataset, what a test needs from outside (needs), calls of the handler, a
headless browser for the pages and the review page as a reviewer works it.

Neither tests/ nor bench/ imports the other; both import this. Nothing in the four stages imports it, and
the Lambda image does not hold it (.dockerignore). It imports no TensorFlow: the serving tests that use it
also run in the Lambda's TensorFlow-free environments.
"""

from project.paths import REPO

TEMPLATE = REPO / "infra" / "template.yaml"  # the SAM template
