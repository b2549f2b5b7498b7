"""A :class:`~devices.transport.ByteStream` over pyserial: a real port
(``/dev/ttyACM0``), a pty, ``socket://host:port`` (an emulator's UART, a TCP
serial server) or ``rfc2217://host:port`` (ser2net in telnet mode)."""

from __future__ import annotations

import serial

from devices.errors import TransportError
from devices.transport import ByteStream


class SerialLine(ByteStream):
    def __init__(self, url: str, *, baud: int = 115200, device: str | None = None) -> None:
        self.url = url
        self._device = device
        try:
            # timeout=0: reads never block; read() below waits with its own timeout.
            self._port = serial.serial_for_url(url, baudrate=baud, timeout=0)
        except (serial.SerialException, ValueError, OSError) as e:
            raise TransportError(f"cannot open serial line {url}: {e}", device=device) from None

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"serial line {self.url} lost: {e}", device=self._device) from None

    def read(self, size: int, timeout: float) -> bytes:
        try:
            self._port.timeout = timeout
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            waiting = self._port.in_waiting
            rest = self._port.read(min(size - 1, waiting)) if size > 1 and waiting else b""
            return first + rest
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"serial line {self.url} lost: {e}", device=self._device) from None

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"serial line {self.url} lost: {e}", device=self._device) from None

    def close(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass  # closing a line that is already gone
