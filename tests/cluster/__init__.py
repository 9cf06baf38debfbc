"""The cluster tests (make test-cluster); a package, so that its conftest does not shadow tests/conftest.py."""
