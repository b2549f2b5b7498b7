"""Microcontrollers: the model-to-C compiler, the runner firmware (C, in
``firmware/``), its host-side protocols and the ``mcu`` runner."""
