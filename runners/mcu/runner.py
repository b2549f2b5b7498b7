"""The microcontroller runner: a full-integer int8 .tflite is compiled to C
(``compiler.py``), built into the runner firmware for the device's board
(``build.py``), checked against the board's RAM and flash, flashed (or booted
under QEMU/Renode), and measured over the framed protocol (``PROTOCOL.md``).

What a job measures, per inference: the firmware's counter around
``eb_model_invoke`` (DWT cycles on a board; executed instructions under QEMU
``-icount``, deterministic, turned into a latency at the board clock and
labelled estimated and emulated), per-operator counts, the image's flash and
static RAM, the arena, the stack high-water mark, and top-1 accuracy over the
suite's split with the same image, streamed sample by sample.

A variant that cannot run on the board (an unsupported operator, an image that
does not fit) is a result, not a failure: the measurement says why in
``not_deployable`` and carries the sizes that were known.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from devices.boards import BoardSpec, load_board
from devices.errors import DeviceError, TransportError
from devices.transport import McuTarget, Transport, sha256_file
from runners.base import EvalSet, Job, ModelFile, Runner, fingerprint, register_runner
from runners.records import (
    Accuracy,
    Figure,
    JobMeasurement,
    LayerRow,
    Memory,
    Power,
    Provenance,
    to_plain,
)

if TYPE_CHECKING:
    from runners.mcu.build import Firmware
    from runners.mcu.compiler import CompiledModel
    from runners.mcu.protocol import FramedClient, Hello

HERE = Path(__file__).resolve().parent
TIMED_REGION = "eb_model_invoke (firmware counter; inputs already in the arena)"
MAX_RUNS_PER_WINDOW = 200  # emulated counts are deterministic: more runs add nothing


def _kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def source_hash() -> str:
    """Hash of the compiler and firmware sources: a compiled model or an image made by
    other sources is another artifact."""
    h = hashlib.sha256()
    for path in sorted(HERE.rglob("*")):
        if path.suffix in (".py", ".c", ".h", ".ld") and "__pycache__" not in path.parts:
            h.update(path.relative_to(HERE).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    """A model compiled and built for one board."""

    compiled: CompiledModel
    firmware: Firmware


class NotDeployable(Exception):
    """The variant cannot run on this board; the message says why."""

    def __init__(self, reason: str, image: Image | None = None) -> None:
        super().__init__(reason)
        self.image = image


def fit_problem(firmware: Firmware, ram_limit: int, flash_limit: int) -> str | None:
    """ "does not fit: needs X KiB RAM, has Y" (and/or flash), or None when it fits."""
    problems = []
    if firmware.ram_bytes > ram_limit:
        problems.append(f"needs {_kib(firmware.ram_bytes)} RAM, has {_kib(ram_limit)}")
    if firmware.flash_bytes > flash_limit:
        problems.append(f"needs {_kib(firmware.flash_bytes)} flash, has {_kib(flash_limit)}")
    return "does not fit: " + "; ".join(problems) if problems else None


_OVERFLOW = re.compile(r"region [`'\"]?(\w+)['\"]? overflowed by (\d+) bytes")


def overflow_reason(message: str, ram_limit: int, flash_limit: int) -> str | None:
    """The linker's "region `RAM' overflowed by N bytes" as a fit verdict."""
    found = _OVERFLOW.findall(message)
    if not found:
        return None
    parts = []
    for region, extra in found:
        is_ram = region.upper() in ("RAM", "SRAM", "DATA")
        limit = ram_limit if is_ram else flash_limit
        what = "RAM" if is_ram else "flash"
        parts.append(f"needs {_kib(limit + int(extra))} {what}, has {_kib(limit)}")
    return "does not fit: " + "; ".join(parts)


def numpy_dtype(tflite_type: str) -> np.dtype:
    """A .tflite tensor type name ("INT8", "FLOAT32") as a little-endian numpy dtype."""
    return np.dtype(tflite_type.lower()).newbyteorder("<")


def quantize_input(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Host data in the model input's dtype, the way the Python agent quantizes (so a
    variant's accuracy on an MCU and under LiteRT are comparable)."""
    np_dtype = numpy_dtype(dtype)
    if scale and np_dtype.kind in "iu" and x.dtype.kind == "f":
        info = np.iinfo(np_dtype)
        q = np.round(x.astype(np.float64) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(np_dtype)
    return x.astype(np_dtype, copy=False)


def dequantize_output(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if scale and y.dtype.kind in "iu":
        return ((y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
            np.float32
        )
    return y.astype(np.float32)


def build_image(
    model: ModelFile,
    board: BoardSpec,
    cache_dir: Path,
    setting: dict[str, Any] | None = None,
    *,
    ram_limit: int | None = None,
    flash_limit: int | None = None,
) -> Image:
    """Compile ``model`` (cached by its hash and the compiler's sources) and build the
    runner firmware for ``board`` (cached by build.py). Raises :class:`NotDeployable`
    for an unsupported model or an image over the limits, RuntimeError for a build
    that failed otherwise."""
    from runners.mcu.build import FirmwareBuildError, build_firmware
    from runners.mcu.compiler import CompileError, UnsupportedModelError, compile_model
    from runners.mcu.tflite_reader import TfliteReadError

    setting = setting or {}
    ram_limit = ram_limit or board.ram_bytes
    flash_limit = flash_limit or board.flash_bytes
    if model.format != "tflite":
        raise NotDeployable(f"the MCU runner takes full-integer .tflite, not {model.format}")
    out = cache_dir / "models" / f"{model.sha256[:16]}-{source_hash()}"
    try:
        compiled = compile_model(model.path, out, name=model.path.stem)
    except UnsupportedModelError as e:
        raise NotDeployable(str(e)) from None
    except CompileError as e:  # a supported operator with parameters it cannot honour
        raise NotDeployable(f"cannot compile: {e}") from None
    except TfliteReadError as e:  # a damaged file: a failure, not a property of the model
        raise RuntimeError(str(e)) from None
    flags = [f"-{setting.get('optimize') or 'O2'}"]
    if setting.get("dsp") is False:
        flags.append("-DEB_NO_DSP=1")
    try:
        # Linked for the profile's own memory, not a smaller part's limits: the image's
        # real sizes are then known and the fit check below names every shortfall
        # (the linker would stop at the first region that overflows).
        firmware = build_firmware(
            compiled.model_c.parent,
            load_board(board.name),
            cache_dir / "firmware",
            extra_cflags=tuple(flags),
        )
    except FirmwareBuildError as e:
        reason = overflow_reason(str(e), ram_limit, flash_limit)
        if reason:
            raise NotDeployable(reason) from None
        raise RuntimeError(f"firmware build failed: {e}") from None
    image = Image(compiled, firmware)
    problem = fit_problem(firmware, ram_limit, flash_limit)
    if problem:
        raise NotDeployable(problem, image)
    return image


def sample_input(
    evaluation: EvalSet | None, shape: tuple[int, ...], dtype: str, scale: float, zero_point: int
) -> np.ndarray:
    """What is timed: the first sample of the accuracy split when there is one (so the
    timed run is a real input), else seeded random data of the input's type."""
    if evaluation is not None:
        x = evaluation.inputs[:1]
        if x.size == int(np.prod(shape)):
            return quantize_input(x.reshape(shape), dtype, scale, zero_point)
    rng = np.random.default_rng(0)
    np_dtype = numpy_dtype(dtype)
    if np_dtype.kind == "f":
        return rng.standard_normal(shape).astype(np_dtype)
    info = np.iinfo(np_dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(np_dtype)


@register_runner("mcu")
class McuRunner(Runner):
    serves = McuTarget

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        if not isinstance(transport, McuTarget):
            raise DeviceError(
                f"the MCU runner needs a microcontroller transport (qemu, serial, renode); "
                f"{transport.name!r} is not one",
                device=transport.device.name,
            )
        self.target: McuTarget = transport
        self._client: FramedClient | None = None
        self._booted: str | None = None  # sha256 of the image the board runs now

    # ------------------------------------------------------------------ building
    @property
    def cache_dir(self) -> Path:
        return self.target.workspace / "mcu"

    def _image(self, model: ModelFile, setting: dict[str, Any]) -> Image:
        try:
            return build_image(
                model,
                self.target.board,
                self.cache_dir,
                setting,
                ram_limit=self.target.ram_limit_bytes,
                flash_limit=self.target.flash_limit_bytes,
            )
        except RuntimeError as e:  # a build that failed for another reason than size
            raise DeviceError(str(e), device=self.device) from None

    def _boot(self, image: Image) -> tuple[FramedClient, Hello]:
        from runners.mcu.protocol import FramedClient

        fw = image.firmware
        if self._booted != fw.sha256 or self._client is None:
            self._disconnect()
            self.target.flash(fw.elf, fw.sha256)
            self._client = FramedClient(self.target.open_serial(), device=self.device)
            self._booted = fw.sha256
        hello = self._client.hello()
        if hello.model_sha256 != image.compiled.sha256:
            raise DeviceError(
                f"the board runs a firmware for model {str(hello.model_sha256)[:12]}, "
                f"not the one just flashed ({image.compiled.sha256[:12]})",
                device=self.device,
            )
        self.facts = self._facts(hello)
        return self._client, hello

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._booted = None

    # ------------------------------------------------------------------ facts
    def _facts(self, hello: Hello | None = None) -> dict[str, Any]:
        board = self.target.board
        facts: dict[str, Any] = {
            "board": board.name,
            "board_model": board.description,
            "arch": board.cpu,
            "cpu_model": board.cpu,
            "cpu_cores": 1,
            "clock_hz": board.clock_hz,
            "ram_limit_bytes": self.target.ram_limit_bytes,
            "flash_limit_bytes": self.target.flash_limit_bytes,
            "counter": board.counter,
            "emulated": self.target.emulated,
            "transport": self.target.name,
            "toolchain": _tool_version(("arm-none-eabi-gcc", "--version")),
        }
        if board.qemu_machine and self.target.emulated:
            facts["emulator"] = _tool_version(("qemu-system-arm", "--version"))
        if hello is not None:
            facts["engine"] = hello.engine
            facts["engine_version"] = hello.engine_version
            facts["runtimes"] = {"mcu": hello.engine_version}
        return facts

    def probe(self) -> dict[str, Any]:
        self.facts = self._facts()
        return self.facts

    # ------------------------------------------------------------------ measuring
    def measure(self, job: Job) -> JobMeasurement:
        try:
            return self._measure(job)
        except TransportError:
            # The line or the board went (an emulator killed, a cable pulled): the next
            # attempt flashes and connects afresh instead of writing to a dead line.
            self._disconnect()
            raise

    def _measure(self, job: Job) -> JobMeasurement:
        if self.target.options.protocol == "eembc":
            return self._measure_eembc(job)
        try:
            image = self._image(job.model, job.setting)
        except NotDeployable as e:
            return self._not_deployable(job, str(e), e.image)
        client, hello = self._boot(image)
        compiled = image.compiled
        first = compiled.inputs[0]
        # Loaded once: the timed input and the accuracy pass read the same split.
        evaluation = job.evaluation() if job.evaluation else None
        data = sample_input(evaluation, tuple(first.shape), first.dtype, first.scale,
                            first.zero_point)  # fmt: skip
        client.write_input(0, data.tobytes())

        m = job.measure
        runs = max(1, min(m.min_runs, m.max_runs or MAX_RUNS_PER_WINDOW, MAX_RUNS_PER_WINDOW))
        counts: list[list[int]] = []
        for rep in range(m.repetitions):
            warmup = m.warmup_runs if rep == 0 else 0
            counts.append(client.infer(runs, warmup, timeout=m.timeout_s))
        seconds_per_count = self._seconds_per_count(hello)
        windows = [[c * seconds_per_count for c in window] for window in counts]
        layer_counts = client.layers(len(compiled.ops))
        total = sum(layer_counts) or 1
        layers = [
            LayerRow(
                name=f"{op.index} {op.builtin}",
                op=op.builtin,
                time_s=c * seconds_per_count,
                share=c / total,
                count=1,
                instructions=c if hello.counter == "instructions" else None,
            )
            for op, c in zip(compiled.ops, layer_counts, strict=False)
        ]
        power = self._energy_pass(client, hello, median_of(counts) * self._seconds_per_count(hello))
        stack_reserved, stack_used = client.stack()
        accuracy = self._accuracy(client, image, evaluation) if evaluation else None
        median_count = median_of(counts)
        fw = image.firmware
        emulated = self.target.emulated
        instructions = median_count if hello.counter == "instructions" else None
        board = self.target.board
        return JobMeasurement(
            runner=self.name,
            provenance=self._provenance(job, hello),
            windows=windows,
            warmup_count=m.warmup_runs,
            timed_region=TIMED_REGION,
            memory=self._memory(image, stack_used),
            power=power,
            accuracy=accuracy,
            layers=layers,
            figures=self._figures(image, stack_reserved, stack_used),
            estimated=["latency"] if hello.counter == "instructions" else [],
            emulated=emulated,
            executed_instructions=instructions,
            note=(
                f"emulated ({self.target.name}): latency = instructions / "
                f"{board.clock_hz / 1e6:g} MHz, one instruction per cycle"
                if emulated
                else None
            ),
            details={
                "hello": {
                    k: v
                    for k, v in to_plain(hello).items()
                    if k not in ("input_tensors", "output_tensors")
                },
                "counts": counts,
                "counter": hello.counter,
                "firmware": {
                    "sha256": fw.sha256,
                    "text": fw.text,
                    "rodata": fw.rodata,
                    "data": fw.data,
                    "bss": fw.bss,
                    "stack": fw.stack,
                },
                "macs": compiled.macs,
            },
        )

    def _seconds_per_count(self, hello: Hello) -> float:
        clock = hello.clock_hz or self.target.board.clock_hz
        if hello.counter in ("cycles", "instructions"):
            return 1.0 / clock
        if not hello.counter_hz:
            raise DeviceError(
                f"firmware counts {hello.counter!r} but gives no counter_hz", device=self.device
            )
        return 1.0 / hello.counter_hz

    def _run_samples(self, client: FramedClient, image: Image, x: np.ndarray) -> np.ndarray:
        """The first output, dequantized, for each sample of ``x`` (first axis)."""
        first_in, first_out = image.compiled.inputs[0], image.compiled.outputs[0]
        shape = tuple(first_in.shape)
        per_sample = int(np.prod(shape))
        if x.size % per_sample:
            raise DeviceError(
                f"inputs of shape {x.shape} do not split into samples of shape {shape}",
                device=self.device,
            )
        samples = x.reshape(-1, *shape[1:]) if shape and shape[0] == 1 else x.reshape(-1, *shape)
        out_shape = tuple(first_out.shape)
        out_dtype = numpy_dtype(first_out.dtype)
        outputs = []
        for sample in samples:
            q = quantize_input(
                sample.reshape(shape), first_in.dtype, first_in.scale, first_in.zero_point
            )
            client.write_input(0, q.tobytes())
            client.infer(1, 0)
            raw = client.read_output(0, first_out.bytes)
            y = np.frombuffer(raw, dtype=out_dtype).reshape(out_shape)
            outputs.append(dequantize_output(y, first_out.scale, first_out.zero_point))
        return np.concatenate(outputs, axis=0) if outputs else np.zeros((0,), np.float32)

    def _accuracy(self, client: FramedClient, image: Image, data: EvalSet) -> Accuracy:
        y = self._run_samples(client, image, data.inputs)
        y = np.ascontiguousarray(y, dtype="<f4")
        digest = hashlib.sha256(y.tobytes()).hexdigest()
        if data.labels is None:
            return Accuracy(count=len(y), outputs_sha256=digest)
        predicted = y.reshape(len(y), -1).argmax(axis=1)
        correct = int((predicted == np.asarray(data.labels)[: len(y)]).sum())
        return Accuracy(
            top1=correct / len(y) if len(y) else None,
            count=len(y),
            correct=correct,
            outputs_sha256=digest,
        )

    def _memory(self, image: Image, stack_used: int | None) -> Memory:
        fw = image.firmware
        return Memory(
            static_ram_bytes=fw.ram_bytes,
            flash_bytes=fw.flash_bytes,
            arena_bytes=image.compiled.arena_bytes,
        )

    def _figures(
        self, image: Image, stack_reserved: int | None, stack_used: int | None
    ) -> list[Figure]:
        fw = image.firmware
        out = [
            Figure("ram_limit", self.target.ram_limit_bytes, "bytes"),
            Figure("flash_limit", self.target.flash_limit_bytes, "bytes"),
            Figure("weights", image.compiled.weights_bytes, "bytes"),
            Figure("macs", image.compiled.macs, "count"),
        ]
        if stack_used is not None:
            out.append(Figure("stack_used", stack_used, "bytes"))
            # Peak RAM: everything static except the unused part of the stack reserve.
            static = fw.data + fw.bss
            out.append(Figure("peak_ram", static + stack_used, "bytes"))
        return out

    def _energy_pass(self, client: FramedClient, hello: Hello, latency_s: float) -> Power | None:
        """Energy per inference from the meter in the board's supply (``power=ppk2`` or
        ``joulescope``): one more INFER of about a second of inferences while the meter
        records on the controller, integrated over that request's span on the host
        clock (so the UART exchange around it counts too, a few ms in a second).
        Without a meter: the profile's estimate, labelled estimated."""
        source = self.target.options.power
        if source not in ("ppk2", "joulescope"):
            return self._power_estimate(latency_s)
        from devices.power.errors import PowerSourceError

        opts = self.target.options
        start = time.monotonic()
        client.infer(1, 0)
        wall_per_run = max(time.monotonic() - start, 1e-4)  # the host's view, UART included
        runs = max(1, min(MAX_ENERGY_RUNS, round(1.0 / wall_per_run)))
        try:
            meter = _open_meter(source, opts.meter_port, opts.meter_mode, opts.meter_voltage_mv)
        except PowerSourceError as e:
            raise DeviceError(str(e), device=self.device) from None
        captured: list[Any] = []
        errors: list[BaseException] = []

        def record() -> None:
            try:
                captured.append(meter.record(runs * wall_per_run * 1.5 + 1.0))
            except Exception as e:  # noqa: BLE001 - reported below, on the runner's thread
                errors.append(e)

        try:
            recorder = threading.Thread(target=record, name="meter", daemon=True)
            recorder.start()
            time.sleep(0.2)  # let the stream start before the window opens
            t0 = time.monotonic()
            client.infer(runs, 0, timeout=runs * wall_per_run * 4 + 10)
            t1 = time.monotonic()
            recorder.join(timeout=runs * wall_per_run * 2 + 15)
        finally:
            meter.close()
        if errors or not captured:
            why = errors[0] if errors else "no capture"
            raise DeviceError(f"{source}: {why}", device=self.device)
        energy = captured[0].energy([(t0, t1, runs)])
        return Power(
            source=source,
            rail=energy.rail,
            mean_power_w=energy.mean_power_w,
            energy_per_inference_j=energy.energy_per_inference_j,
            sample_rate_hz=energy.sample_rate_hz,
            sample_count=energy.sample_count,
            coverage=energy.coverage,
            note=f"{runs} inferences in one request, on the controller's clock",
        )

    def _power_estimate(self, latency_s: float) -> Power | None:
        """Energy per inference from the board profile's run current, when it has one;
        labelled estimated (there is no meter on this path)."""
        board = self.target.board
        if not (board.current_ua_per_mhz and board.supply_v):
            return None
        watts = board.current_ua_per_mhz * 1e-6 * (board.clock_hz / 1e6) * board.supply_v
        return Power(
            source="board profile",
            rail="core (datasheet run current)",
            mean_power_w=watts,
            energy_per_inference_j=watts * latency_s,
            sample_count=0,
            note=f"{board.current_ua_per_mhz:g} uA/MHz at {board.supply_v:g} V, from the profile",
            estimated=True,
        )

    def _provenance(self, job: Job, hello: Hello | None) -> Provenance:
        engine = hello.engine_version if hello else None
        return Provenance(
            runner=self.name,
            runner_version=engine,
            model_sha256=job.model.sha256,
            runtime="mcu",
            runtime_version=engine,
            device_fingerprint=fingerprint(self.facts or self._facts()),
            **job.provenance,
            extra={"board": self.target.board.name, "sources": source_hash()},
        )

    def _not_deployable(self, job: Job, reason: str, image: Image | None) -> JobMeasurement:
        memory = self._memory(image, None) if image else Memory()
        figures = (
            self._figures(image, None, None)
            if image
            else [
                Figure("ram_limit", self.target.ram_limit_bytes, "bytes"),
                Figure("flash_limit", self.target.flash_limit_bytes, "bytes"),
            ]
        )
        self.facts = self.facts or self._facts()
        return JobMeasurement(
            runner=self.name,
            provenance=self._provenance(job, None),
            memory=memory,
            figures=figures,
            emulated=self.target.emulated,
            not_deployable=reason,
            note=f"not deployable on {self.target.board.name}: {reason}",
        )

    # ------------------------------------------------------------------ EEMBC firmware
    def _measure_eembc(self, job: Job) -> JobMeasurement:
        """Measure with a firmware that speaks the EEMBC / MLPerf Tiny text protocol and
        holds its own model (``--option protocol=eembc [--option firmware=ELF]``): the
        job's .tflite only says how inputs are quantized. The firmware times N runs
        between two ``m-lap-us-`` stamps, so each repetition gives one figure, the mean
        of its runs; accuracy uses the firmware's ``m-results-`` (dequantized) output."""
        from runners.mcu.eembc import EembcClient
        from runners.mcu.tflite_reader import TfliteReadError, read_tflite

        try:
            graph = read_tflite(job.model.path)
        except TfliteReadError as e:
            raise DeviceError(str(e), device=self.device) from None
        first = graph.tensors[graph.inputs[0]]
        scale = first.quantization.scales[0] if first.quantization else 0.0
        zero_point = first.quantization.zero_points[0] if first.quantization else 0
        if self.target.options.firmware:
            elf = Path(self.target.options.firmware).expanduser()
            if not elf.is_file():
                raise DeviceError(f"option firmware: no such file {elf}", device=self.device)
            self._disconnect()
            self.target.flash(elf, sha256_file(elf))
        client = EembcClient(self.target.open_serial(), device=self.device)
        try:
            name = client.name()
            profile = client.profile()
            shape = tuple(first.shape)

            def as_bytes(x: np.ndarray) -> bytes:
                return quantize_input(x.reshape(shape), first.dtype, scale, zero_point).tobytes()

            evaluation = job.evaluation() if job.evaluation else None
            data = sample_input(evaluation, shape, first.dtype, scale, zero_point)
            client.load(data.tobytes())
            m = job.measure
            runs = max(1, min(m.min_runs, MAX_RUNS_PER_WINDOW))
            windows = []
            for rep in range(m.repetitions):
                laps = client.infer(runs, m.warmup_runs if rep == 0 else 0, timeout=m.timeout_s)
                windows.append([(laps[-1] - laps[0]) / 1e6 / runs])
            accuracy = None
            if evaluation is not None:
                accuracy = self._eembc_accuracy(client, evaluation, as_bytes)
        finally:
            client.line.close()
        emulated = self.target.emulated
        self.facts = {**self._facts(), "engine": name, "eembc_profile": profile.profile}
        return JobMeasurement(
            runner=self.name,
            provenance=self._provenance(job, None),
            windows=windows,
            warmup_count=m.warmup_runs,
            timed_region=f"EEMBC infer {runs}: mean of the runs between two m-lap-us stamps",
            accuracy=accuracy,
            estimated=["latency"] if emulated else [],
            emulated=emulated,
            note=f"EEMBC firmware {name!r} ({profile.model or 'model not named'})",
            details={"eembc": {"name": name, "profile": profile.profile, "model": profile.model}},
        )

    def _eembc_accuracy(self, client: Any, data: EvalSet, as_bytes: Any) -> Accuracy:
        outputs = []
        for sample in data.inputs:
            client.load(as_bytes(sample))
            client.infer(1, 0)
            outputs.append(np.asarray(client.last_results, dtype="<f4"))
        y = np.stack(outputs) if outputs else np.zeros((0, 0), "<f4")
        digest = hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()
        if data.labels is None or not len(y):
            return Accuracy(count=len(y), outputs_sha256=digest)
        correct = int((y.argmax(axis=1) == np.asarray(data.labels)[: len(y)]).sum())
        return Accuracy(top1=correct / len(y), count=len(y), correct=correct, outputs_sha256=digest)

    # ------------------------------------------------------------------ infer
    def infer(self, model: ModelFile, setting: dict[str, Any], inputs: np.ndarray) -> np.ndarray:
        try:
            image = self._image(model, setting)
        except NotDeployable as e:
            raise DeviceError(
                f"{model.path.name} cannot run here: {e}", device=self.device
            ) from None
        client, _ = self._boot(image)
        return self._run_samples(client, image, inputs)

    def kill(self) -> None:
        self._disconnect()

    def close(self) -> None:
        self._disconnect()


MAX_ENERGY_RUNS = 5000


def median_of(counts: list[list[int]]) -> int:
    flat = sorted(c for window in counts for c in window)
    return flat[len(flat) // 2]


def _open_meter(source: str, port: str | None, mode: str, voltage_mv: int) -> Any:
    if source == "ppk2":
        from devices.power.ppk2 import Ppk2Meter

        return Ppk2Meter(port, mode=mode, voltage_mv=voltage_mv).open()  # type: ignore[arg-type]
    from devices.power.joulescope import JoulescopeMeter

    return JoulescopeMeter(port).open()


@functools.cache  # a tool's version does not change within a run: ask once, not per job
def _tool_version(argv: tuple[str, ...]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None
