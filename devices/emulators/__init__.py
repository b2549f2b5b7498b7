"""Emulated microcontrollers the CI can run without hardware.

* :mod:`~devices.emulators.renode` - Antmicro Renode: a ``.resc`` script generated
  from a board profile's ``renode_platform``, and the ``renode`` transport that runs
  it headless with the board's UART on a local socket.

(The QEMU transport lives in :mod:`devices.qemu`.)
"""
