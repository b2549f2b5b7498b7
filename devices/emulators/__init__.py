"""Emulated devices the CI can run without hardware.

* :mod:`~devices.emulators.renode` - Antmicro Renode: a ``.resc`` script generated
  from a board profile's ``renode_platform``, and the ``renode`` transport that runs
  it headless with the board's UART on a local socket.
* :mod:`~devices.emulators.adbd` - an emulated Android phone: an adbd speaking the
  real ADB wire protocol on a loopback port, over a sandboxed Android-like file
  system (:mod:`~devices.emulators.phone`), with stand-in ``benchmark_model`` and
  ``onnxruntime_perf_test`` that run the model on the host and say so.

(The QEMU transport lives in :mod:`devices.qemu`.)
"""
