"""Build the runner firmware for one compiled model and one board.

:func:`build_firmware` compiles the runtime (``firmware/runtime``), the board's port
(``firmware/ports/<port>``, plus ``boards/<board>.c`` for a port that has boards),
every kernel (``firmware/kernels/*.c``) and the model's C files with
arm-none-eabi-gcc, links them with a linker script filled in from the board
profile, and reads the section sizes back from the ELF.

Builds are cached by content: the key is a sha256 over every input file's bytes,
the flags, the board profile and ``arm-none-eabi-gcc --version``, so building the
same thing twice runs no compiler the second time, and any change to a source,
a flag or the toolchain builds afresh.

Every compiler call is an argv list (never a shell string).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

from devices.boards import BoardSpec
from devices.qemu import ICOUNT_SHIFT

FIRMWARE_DIR = Path(__file__).with_name("firmware")
GCC = "arm-none-eabi-gcc"
GCC_MISSING = (
    "arm-none-eabi-gcc not found on PATH: install the Arm embedded toolchain "
    "(apt install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
)
# -O2 by default: on the test model (tests/data/mcu/test_model) under QEMU it runs
# 16704 instructions per inference against 22662 at -Os (-O3: 16704), for 2.4 KiB
# more code (9.9 vs 7.5 KiB of text). -Os is one extra_cflags=("-Os",) away.
DEFAULT_OPT = "-O2"
CACHE_FORMAT = 1  # bump when the cached layout or the key's recipe changes
ARENA_SYMBOL = "eb_arena"


class FirmwareBuildError(RuntimeError):
    """The firmware did not build: the message names the file and the compiler's
    first error line; ``argv`` and ``stderr`` hold the whole story."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), stderr: str = "") -> None:
        self.argv = list(argv)
        self.stderr = stderr
        super().__init__(message)


@dataclass(frozen=True)
class Firmware:
    """A linked firmware image and what it occupies."""

    elf: Path
    sha256: str
    board: str
    text: int  # code (vectors, .text, exception tables)
    rodata: int  # constants: the model's weights live here
    data: int  # initialised RAM (also stored in flash)
    bss: int  # zeroed RAM: the arena lives here
    stack: int  # the main stack reserved by the linker script
    flash_bytes: int  # text + rodata + data
    ram_bytes: int  # data + bss + stack
    arena_bytes: int | None  # size of the `eb_arena` symbol, when the model has one
    from_cache: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class _Sources:
    c_files: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    key_files: tuple[Path, ...]  # every file whose bytes go into the cache key
    linker_template: Path


def build_firmware(
    model_c_dir: Path,
    board: BoardSpec,
    cache_dir: Path,
    *,
    extra_cflags: Sequence[str] = (),
) -> Firmware:
    """Compile and link the firmware for the model in ``model_c_dir`` (its ``*.c``
    implement ``include/eb_model.h``) on ``board``; cached under ``cache_dir``."""
    gcc = shutil.which(GCC)
    if gcc is None:
        raise FirmwareBuildError(GCC_MISSING)
    model_c_dir = Path(model_c_dir).resolve()
    sources = _collect_sources(model_c_dir, board)
    cflags = _cflags(board, sources.include_dirs, extra_cflags)
    ldflags = ["--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections"]

    key = _cache_key(gcc, sources, cflags, ldflags, board)
    out_dir = Path(cache_dir) / f"{board.name}-{key[:32]}"
    cached = _load_cached(out_dir)
    if cached is not None:
        return cached

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        firmware = _build(gcc, sources, cflags, ldflags, board, work, out_dir)
        _publish(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    published = _load_cached(out_dir)
    return replace(published, from_cache=False) if published is not None else firmware


# ---- sources and flags ----


def _collect_sources(model_c_dir: Path, board: BoardSpec) -> _Sources:
    if not model_c_dir.is_dir():
        raise FirmwareBuildError(f"model directory {model_c_dir} does not exist")
    model_c = sorted(model_c_dir.glob("*.c"))
    if not model_c:
        raise FirmwareBuildError(f"{model_c_dir}: no model .c files (expected model.c)")
    port_dir = FIRMWARE_DIR / "ports" / board.port
    if not port_dir.is_dir():
        raise FirmwareBuildError(
            f"board {board.name}: no firmware port {board.port!r} in {port_dir}"
        )
    template = port_dir / "link.ld.in"
    if not template.is_file():
        raise FirmwareBuildError(f"port {board.port}: {template} is missing")
    c_files = sorted((FIRMWARE_DIR / "runtime").glob("*.c")) + sorted(port_dir.glob("*.c"))
    # A port with a boards/ directory needs the board's own file (its HAL hooks).
    if (port_dir / "boards").is_dir():
        board_c = port_dir / "boards" / f"{board.name.replace('-', '_')}.c"
        if not board_c.is_file():
            raise FirmwareBuildError(
                f"board {board.name}: port {board.port} needs {board_c} (the eb_hal.h hooks)"
            )
        c_files.append(board_c)
    kernels = FIRMWARE_DIR / "kernels"
    c_files += sorted(kernels.glob("*.c")) + model_c
    include_dirs = (
        FIRMWARE_DIR / "include",
        FIRMWARE_DIR / "runtime",
        port_dir,
        kernels,
        model_c_dir,
    )
    headers = [h for d in include_dirs for h in sorted(d.glob("*.h"))]
    key_files = tuple(dict.fromkeys([*c_files, *headers, template]))
    return _Sources(tuple(c_files), include_dirs, key_files, template)


def _c_string(value: str) -> str:
    """A -D value that the preprocessor sees as a C string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _cflags(board: BoardSpec, include_dirs: Iterable[Path], extra: Sequence[str]) -> list[str]:
    flags = [
        *board.cflags,
        DEFAULT_OPT,
        "-g",
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-ffunction-sections",
        "-fdata-sections",
        "-fno-common",
        f"-DEB_BOARD_NAME={_c_string(board.name)}",
        f"-DEB_CLOCK_HZ={board.clock_hz}u",
        f"-DEB_BAUD={board.baud}u",
    ]
    if board.qemu_machine and not any(f.startswith("-DEB_ICOUNT_SHIFT=") for f in extra):
        # The firmware converts SysTick ticks to instructions for this -icount shift.
        flags.append(f"-DEB_ICOUNT_SHIFT={ICOUNT_SHIFT}")
    flags += [f"-I{d}" for d in include_dirs]
    return [*flags, *extra]  # last: extra flags (e.g. -Os) override the defaults


@cache
def _gcc_version(gcc: str, mtime_ns: int, size: int) -> str:
    # Keyed on the binary's stat too, so an upgraded toolchain is noticed.
    try:
        proc = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FirmwareBuildError(f"cannot run {gcc} --version: {e}") from None
    return proc.stdout.strip()


def _cache_key(
    gcc: str, sources: _Sources, cflags: list[str], ldflags: list[str], board: BoardSpec
) -> str:
    st = os.stat(gcc)
    h = hashlib.sha256()
    h.update(f"edgebench-firmware-{CACHE_FORMAT}\0".encode())
    h.update(_gcc_version(gcc, st.st_mtime_ns, st.st_size).encode() + b"\0")
    h.update(json.dumps([cflags, ldflags, board.model_dump(mode="json")]).encode() + b"\0")
    for path in sources.key_files:
        data = path.read_bytes()
        h.update(f"{path}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


# ---- building ----


def _linker_script(template: Path, board: BoardSpec) -> str:
    text = template.read_text()
    values = {
        "@FLASH_ORIGIN@": f"0x{board.flash_origin:08X}",
        "@FLASH_BYTES@": str(board.flash_bytes),
        "@RAM_ORIGIN@": f"0x{board.ram_origin:08X}",
        "@RAM_BYTES@": str(board.ram_bytes),
        "@STACK_BYTES@": str(board.stack_bytes),
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


_ERROR_LINE = re.compile(r"(\berror\b:|undefined reference|multiple definition|overflowed)")


def _first_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if _ERROR_LINE.search(line):
            return line.strip()
    return lines[0].strip() if lines else "(no compiler output)"


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise FirmwareBuildError(f"{what}: compiler timed out after 300 s", argv=argv) from None
    except OSError as e:
        raise FirmwareBuildError(f"{what}: cannot run {argv[0]}: {e}", argv=argv) from None
    if proc.returncode != 0:
        raise FirmwareBuildError(
            f"{what} failed: {_first_error(proc.stderr)}", argv=argv, stderr=proc.stderr
        )


def _object_name(path: Path) -> str:
    try:
        rel = path.relative_to(FIRMWARE_DIR)
    except ValueError:
        rel = Path("model") / path.name
    return "__".join(rel.with_suffix("").parts) + ".o"


def _build(
    gcc: str,
    sources: _Sources,
    cflags: list[str],
    ldflags: list[str],
    board: BoardSpec,
    work: Path,
    out_dir: Path,
) -> Firmware:
    ld = work / "link.ld"
    ld.write_text(_linker_script(sources.linker_template, board))
    objects = [work / _object_name(c) for c in sources.c_files]
    jobs = [
        ([gcc, *cflags, "-c", str(c), "-o", str(o)], f"compiling {c.name}")
        for c, o in zip(sources.c_files, objects, strict=True)
    ]
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        # list(): re-raise the first failure here, in source order.
        list(pool.map(lambda job: _run(*job), jobs))
    elf = work / "firmware.elf"
    link = [
        gcc,
        *board.cflags,
        *ldflags,
        f"-T{ld}",
        f"-Wl,-Map={work / 'firmware.map'}",
        *map(str, objects),
        "-lm",
        "-o",
        str(elf),
    ]
    _run(link, f"linking for {board.name}")
    sizes = elf_sizes(elf)
    firmware = Firmware(
        elf=out_dir / "firmware.elf",
        sha256=hashlib.sha256(elf.read_bytes()).hexdigest(),
        board=board.name,
        text=sizes.text,
        rodata=sizes.rodata,
        data=sizes.data,
        bss=sizes.bss,
        stack=sizes.stack,
        flash_bytes=sizes.text + sizes.rodata + sizes.data,
        ram_bytes=sizes.data + sizes.bss + sizes.stack,
        arena_bytes=sizes.symbols.get(ARENA_SYMBOL),
    )
    record = {k: v for k, v in asdict(firmware).items() if k not in ("elf", "from_cache")}
    (work / "firmware.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    return firmware


def _publish(work: Path, out_dir: Path) -> None:
    """Move the finished build into place in one rename: a reader never sees half
    a build, and of two concurrent builds of the same key the first one stays."""
    staged = work / "out"
    staged.mkdir()
    for name in ("firmware.elf", "firmware.json", "firmware.map", "link.ld"):
        os.replace(work / name, staged / name)
    try:
        os.rename(staged, out_dir)
    except OSError:
        if not (out_dir / "firmware.json").is_file():
            raise


def _load_cached(out_dir: Path) -> Firmware | None:
    meta, elf = out_dir / "firmware.json", out_dir / "firmware.elf"
    if not (meta.is_file() and elf.is_file()):
        return None
    try:
        record = json.loads(meta.read_text())
        firmware = Firmware(elf=elf, from_cache=True, **record)
    except (ValueError, TypeError):
        return None  # a damaged cache entry: build again
    if hashlib.sha256(elf.read_bytes()).hexdigest() != firmware.sha256:
        return None
    return firmware


# ---- ELF reading (32-bit little-endian ARM: all this needs) ----


@dataclass(frozen=True)
class ElfSizes:
    text: int
    rodata: int
    data: int
    bss: int
    stack: int
    symbols: dict[str, int]  # object symbol sizes by name


_TEXT_SECTIONS = (".text", ".ARM.exidx", ".ARM.extab", ".init", ".fini", ".vectors")


def elf_sizes(path: Path) -> ElfSizes:
    """Section sizes and object symbol sizes of an ARM ELF32 file."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise FirmwareBuildError(f"{path}: not a 32-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<I", raw, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", raw, 0x2E)
    sections = []
    for i in range(shnum):
        sections.append(struct.unpack_from("<IIIIIIIIII", raw, shoff + i * shentsize))
    str_off = sections[shstrndx][4]

    def name_at(table_off: int, idx: int) -> str:
        end = raw.index(b"\0", table_off + idx)
        return raw[table_off + idx : end].decode("ascii", "replace")

    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0}
    symbols: dict[str, int] = {}
    for sh in sections:
        name = name_at(str_off, sh[0])
        sh_type, sh_size = sh[1], sh[5]
        if name in _TEXT_SECTIONS:
            sizes["text"] += sh_size
        elif name == ".rodata":
            sizes["rodata"] += sh_size
        elif name == ".data":
            sizes["data"] += sh_size
        elif name == ".bss":
            sizes["bss"] += sh_size
        elif name == ".stack":
            sizes["stack"] += sh_size
        if sh_type == 2:  # SHT_SYMTAB; its sh_link names the string table
            strtab_off = sections[sh[6]][4]
            entsize = sh[9] or 16
            for j in range(sh_size // entsize):
                st_name, _value, st_size, st_info, _other, _shndx = struct.unpack_from(
                    "<IIIBBH", raw, sh[4] + j * entsize
                )
                if st_info & 0xF == 1 and st_name:  # STT_OBJECT
                    symbols[name_at(strtab_off, st_name)] = st_size
    return ElfSizes(symbols=symbols, **sizes)
