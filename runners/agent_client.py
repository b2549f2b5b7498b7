"""Host side of the runner-agent protocol (runners/agent/PROTOCOL.md).

:class:`AgentClient` pushes ``runners/agent/edgebench_agent.py`` to a device through a
:class:`~devices.transport.Transport`, starts it, and turns requests into method calls.
Failures come back as the ``devices.errors`` hierarchy:

* the agent answered with a structured error -> :class:`~devices.errors.AgentError`
  (``.kind`` is the error kind); the agent is still usable;
* the agent died, closed stdout, printed garbage, answered out of order or sent a
  reply that breaks the protocol (ok without a result object, eval outputs that are no
  array) -> :class:`~devices.errors.TransportError` (with the agent's stderr tail);
* no answer in time -> :class:`~devices.errors.TransportTimeout`; the agent is killed,
  because a request still running on it would answer later and desynchronise the stream.

After a transport-level failure the client is dead: every later request raises
``TransportError`` at once; start a new client.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from devices.errors import AgentError, DeviceError, TransportError, TransportTimeout
from devices.local import LocalProcess
from devices.transport import PosixHost, Stream, sha256_file

AGENT_PATH: Path = Path(__file__).resolve().parent / "agent" / "edgebench_agent.py"
PROTOCOL_VERSION = 1

_LINE_PREVIEW = 200  # how much of an unparseable stdout line an error quotes


class AgentClient:
    """One running agent on one device. Not for concurrent use from several threads
    (requests are serialised by a lock, but interleaved evaluate() streams would mix
    their running totals)."""

    def __init__(self, transport: PosixHost, process: Stream, *, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self._proc = process
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._dead: str | None = None  # why the process is unusable, once it is
        self._closed = False
        self.hello: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}

    @property
    def device(self) -> str:
        return self.transport.device.name

    @classmethod
    def start(cls, transport: PosixHost, *, timeout: float = 60.0) -> AgentClient:
        """Push the agent (once per content hash), start it and exchange ``hello``."""
        remote = transport.push(AGENT_PATH, sha256_file(AGENT_PATH), "edgebench_agent.py")
        # -u: unbuffered, so a reply is never stuck in the agent's stdio buffer.
        process = transport.open_stream([transport.python, "-u", remote])
        client = cls(transport, process, timeout=timeout)
        try:
            hello = client.request("hello", timeout=timeout)
            if hello.get("protocol") != PROTOCOL_VERSION:
                raise TransportError(
                    f"agent speaks protocol {hello.get('protocol')!r}, "
                    f"this host speaks {PROTOCOL_VERSION}",
                    device=client.device,
                )
        except BaseException:
            client._kill("start failed")
            raise
        client.hello = hello
        client.facts = dict(hello.get("facts") or {})
        return client

    # ------------------------------------------------------------------ requests

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and return its ``result``; see the module doc for errors."""
        with self._lock:
            if self._dead is not None:
                raise TransportError(f"agent is not running ({self._dead})", device=self.device)
            rid = next(self._ids)
            limit = self.timeout if timeout is None else timeout
            # Fields first, so that a stray "id" or "op" among them cannot override ours.
            line = json.dumps({**fields, "id": rid, "op": op})
            try:
                self._proc.write_line(line)
            except TransportError:
                self._kill("stdin closed")
                raise
            reply = self._read_reply(op, rid, limit)
        if reply.get("ok") is True:
            result = reply.get("result")
            if not isinstance(result, dict):
                # Every op's result is an object (PROTOCOL.md); taking {} for a missing
                # one would let a bench without windows pass for a measurement.
                self._kill("malformed ok reply")
                raise TransportError(
                    f"agent sent an ok reply without a 'result' object: {reply!r:.200}",
                    device=self.device,
                )
            return result
        error = reply.get("error")
        if not isinstance(error, dict):
            self._kill("malformed error reply")
            raise TransportError(
                f"agent sent an error reply without 'error': {reply!r:.200}", device=self.device
            )
        raise AgentError(
            str(error.get("kind") or "unknown"),
            str(error.get("message") or ""),
            device=self.device,
        )

    def _read_reply(self, op: str, rid: int, timeout: float) -> dict[str, Any]:
        try:
            line = self._proc.read_line(timeout)
        except TransportTimeout:
            self._kill(f"{op} timed out")
            raise TransportTimeout(
                f"agent gave no reply to {op!r} within {timeout:g} s; agent terminated",
                device=self.device,
            ) from None
        if line is None:
            code = self._proc.wait(2.0)
            tail = self._proc.stderr_tail()[-2000:]
            self._kill(f"exited with {code}")
            raise TransportError(
                f"agent exited (code {code}) while handling {op!r}; stderr tail:\n{tail}",
                device=self.device,
            )
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." thousands deep
            reply = None
        if not isinstance(reply, dict):
            self._kill("non-JSON output")
            raise TransportError(
                f"agent wrote a non-JSON line on stdout: {line[:_LINE_PREVIEW]!r}",
                device=self.device,
            )
        reply_id = reply.get("id")
        # The same int: JSON's true (and 1.0) compare equal to 1 in Python.
        if type(reply_id) is not int or reply_id != rid:
            # A late or missing reply means every later reply would be mis-attributed.
            self._kill("protocol out of step")
            raise TransportError(
                f"protocol out of step: sent id {rid} ({op!r}), got a reply for id "
                f"{reply_id!r}: {line[:_LINE_PREVIEW]!r}",
                device=self.device,
            )
        return reply

    def kill(self) -> None:
        """Stop the agent now, without a goodbye: its state is unknown or the user
        interrupted. A request in flight in another thread fails at once."""
        self._kill("killed")

    def _kill(self, why: str) -> None:
        self._dead = self._dead or why
        try:
            self._proc.terminate()
        except Exception:  # best effort: the process may be gone already
            pass

    # ------------------------------------------------------------------ ops

    def load(
        self,
        remote_path: str,
        sha256: str,
        runtime: str,
        threads: int | None = None,
        providers: list[str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Load a model already on the device (see Transport.push); the agent checks its
        hash before loading. Returns init_s, rss_after_load_bytes, inputs, outputs, ...
        ``extra``: runtime-specific fields (torch: device, input_shapes, input_dtypes)."""
        return self.request(
            "load",
            path=remote_path,
            sha256=sha256,
            runtime=runtime,
            threads=threads,
            providers=providers,
            **extra,
        )

    def bench(self, *, timeout: float, **measure: Any) -> dict[str, Any]:
        """Run the latency measurement; ``measure`` holds the bench fields
        (warmup_runs, min_runs, min_duration_s, repetitions, seed, max_runs, ...)."""
        return self.request("bench", timeout=timeout, **measure)

    def evaluate(
        self,
        inputs: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        batch_size: int = 64,
        return_outputs: bool = False,
    ) -> dict[str, Any]:
        """Run the loaded model over ``inputs`` (first axis = samples) in batches.

        Returns the agent's running totals after the last batch (count, correct, top1,
        outputs_sha256) and, with ``return_outputs``, ``outputs``: all first-output
        values as one float32 array. Totals start from zero on every call.
        """
        inputs = np.asarray(inputs)
        n = int(inputs.shape[0]) if inputs.ndim else 0
        if n == 0:
            raise ValueError("evaluate needs at least one sample")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        label_list: list[int] | None = None
        if labels is not None:
            label_list = [int(v) for v in np.asarray(labels).reshape(-1)]
            if len(label_list) != n:
                raise ValueError(f"{len(label_list)} labels for {n} samples")
        result: dict[str, Any] = {}
        outputs: list[np.ndarray] = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            result = self.request(
                "eval",
                inputs=encode_array(inputs[start:stop]),
                labels=None if label_list is None else label_list[start:stop],
                reset=start == 0,
                return_outputs=return_outputs,
            )
            if return_outputs:
                try:
                    outputs.append(decode_array(result.pop("outputs", None)))
                except ValueError as e:
                    # A reply that says ok but carries no readable array broke the
                    # protocol; what else it holds cannot be trusted either.
                    self._kill("malformed eval outputs")
                    raise TransportError(
                        f"agent sent eval outputs that are not an array: {e}", device=self.device
                    ) from None
        if return_outputs:
            try:
                result["outputs"] = np.concatenate(outputs, axis=0)
            except ValueError as e:  # batches of different shapes: not one model's outputs
                self._kill("eval outputs of different shapes")
                raise TransportError(
                    f"agent sent eval outputs of different shapes: {e}", device=self.device
                ) from None
        return result

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Say bye (briefly), then make sure the process is gone. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._dead is None:
            try:
                self.request("bye", timeout=5.0)
                # Its reply to bye is all it had to say. A local agent is killed below at
                # once (waiting for the interpreter to tear the runtime down cost ~60 ms
                # a job); a remote one is waited for, as killing it takes a remote command.
                if not isinstance(self._proc, LocalProcess):
                    self._proc.wait(5.0)
            except DeviceError:
                pass  # it is being killed below anyway
        self._kill("closed")

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """numpy array -> the protocol's ``{dtype, shape, data_b64}`` (little-endian, C order)."""
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": a.dtype.name,
        "shape": list(a.shape),
        "data_b64": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def decode_array(obj: Any) -> np.ndarray:
    """The protocol's ``{dtype, shape, data_b64}`` -> numpy array; ``ValueError`` for
    anything else (a missing field, an unknown dtype, bad base64, a size that does not
    match the shape)."""
    if not isinstance(obj, dict):
        raise ValueError(f"an array must be {{dtype, shape, data_b64}}, not {obj!r:.80}")
    try:
        dtype = np.dtype(str(obj["dtype"])).newbyteorder("<")
        shape = obj["shape"]
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"shape must be a list of sizes, not {shape!r:.80}")
        raw = base64.b64decode(str(obj["data_b64"]), validate=True)
    except KeyError as e:
        raise ValueError(f"array without {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:  # np.dtype raises TypeError; binascii.Error
        raise ValueError(f"bad array: {e}") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise ValueError(f"dtype {dtype} cannot travel as raw bytes")
    expected = dtype.itemsize * math.prod(shape)
    if len(raw) != expected:
        raise ValueError(f"{len(raw)} bytes for shape {shape} of {dtype} ({expected} needed)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
