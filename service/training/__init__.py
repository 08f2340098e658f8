"""Training side (the only package that imports torch): losses, trainer, ONNX export, curvature.

Entry point: ``service.training.pipeline.train_and_export``; the ``calibserve train`` glue lives in
``service.training.cli``.  This ``__init__`` imports nothing so that building the CLI parser stays cheap.
"""
