"""Speed of keras_alexnet next to an equivalent PyTorch network and the machine's ceiling.

Not part of the library (the wheel does not ship it); run it from a clone through
scripts/benchmark.py. The modules:

  run.py              settings, presets and the orchestrator, which starts one worker process
                      per measurement and never runs a network itself
  keras_worker.py     what a Keras worker process measures (python -m benchmarks.keras_worker)
  torch_reference.py  the same network in PyTorch, and the PyTorch worker
                      (python -m benchmarks.torch_reference)
  measure.py          what both workers share: timing, peak memory, the spec-in/result-out
                      protocol; standard library only, so the PyTorch worker never loads Keras
  report.py           the JSON report, the markdown table and docs/PERFORMANCE.md's section

This file imports nothing, so `python -m benchmarks.torch_reference` loads no TensorFlow.
"""
