"""calibserve: model serving for classifiers whose confidence is a contract."""

__version__ = "0.1.0"
