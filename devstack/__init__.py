"""Development tooling: the native stack, the broker launcher, service starters, lock files.

Not the product: it is not in the filmrec wheel. The Makefile, the tests and CI run
it from the repository root (`python -m devstack.<module>`).
"""
