"""Every way an archive can be refused: crafted byte by byte where tarfile would not write it."""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from pathlib import Path

import pytest

from p2p_orchestrator.archive import ArchiveLimits, unpack_archive
from p2p_orchestrator.errors import ServiceInstallationError

# ---------------------------------------------------------------- raw tar builder


def header(
    name: bytes,
    *,
    size: int = 0,
    typeflag: bytes = b"0",
    mode: int = 0o644,
    linkname: bytes = b"",
    magic: bytes = b"ustar\x0000",
    prefix: bytes = b"",
    checksum: int | None = None,
    size_field: bytes | None = None,
) -> bytes:
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"%07o\x00" % mode
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = size_field if size_field is not None else b"%011o\x00" % size
    block[136:148] = b"00000000000\x00"
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = magic
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b"%06o\x00 " % (sum(block) if checksum is None else checksum)
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def entry(name: bytes, data: bytes = b"", **kwargs: object) -> bytes:
    return header(name, size=len(data), **kwargs) + pad(data)  # type: ignore[arg-type]


def directory(name: bytes) -> bytes:
    return header(name, typeflag=b"5", mode=0o755)


def pax_payload(records: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length).encode()) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def pax(records: list[tuple[bytes, bytes]], typeflag: bytes = b"x") -> bytes:
    return entry(b"././@PaxHeader", pax_payload(records), typeflag=typeflag)


def longname(name: bytes) -> bytes:
    return entry(b"././@LongLink", name + b"\x00", typeflag=b"L", magic=b"ustar  \x00")


END = bytes(1024)
TOP = directory(b"svc/")
MAIN = entry(b"svc/main.py", b"print('hi')\n")
SUB = directory(b"svc/sub/") + entry(b"svc/sub/data.txt", b"payload\n")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def tgz(*members: bytes) -> bytes:
    """A gzip'd tar of a valid service plus ``members`` (so there is something to clean up)."""
    return gz(TOP + MAIN + SUB + b"".join(members) + END)


def bare(*members: bytes) -> bytes:
    return gz(b"".join(members) + END)


def manifest(obj: object) -> bytes:
    return entry(b"svc/manifest.json", json.dumps(obj).encode())


VALID = tgz()


def flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


# ---------------------------------------------------------------- cases

P = pytest.param
CASES = [
    # not gzip / not tar / corrupt / truncated / trailing
    P(b"", "not_gzip", "gzip", id="empty-input"),
    P(b"hello, world", "not_gzip", "gzip", id="text"),
    P(TOP + MAIN + END, "not_gzip", "gzip", id="plain-tar"),
    P(zlib.compress(TOP + MAIN + END), "not_gzip", "gzip", id="zlib-not-gzip"),
    P(gz(b""), "not_tar", "not a tar", id="gzip-of-nothing"),
    P(gz(b"hello"), "not_tar", "not a tar", id="gzip-of-short-text"),
    P(gz(b"x" * 4096), "not_tar", "checksum", id="gzip-of-garbage"),
    P(gz(header(b"svc/main.py", magic=bytes(8)) + END), "not_tar", "not a ustar", id="v7-header"),
    P(flipped(VALID, len(VALID) - 8), "corrupt_archive", "corrupt", id="bad-crc"),
    P(flipped(VALID, len(VALID) - 2), "corrupt_archive", "corrupt", id="bad-isize"),
    P(VALID[:3] + b"\xe0" + VALID[4:], "corrupt_archive", "corrupt", id="bad-gzip-flags"),
    P(VALID[: len(VALID) // 2], "truncated_archive", "truncated", id="cut-in-half"),
    P(VALID[:-1], "truncated_archive", "truncated", id="cut-trailer"),
    P(gz(TOP + MAIN), "truncated_archive", "truncated", id="no-end-marker"),
    P(gz(TOP + MAIN + bytes(512)), "truncated_archive", "truncated", id="one-zero-block"),
    P(gz(TOP + header(b"svc/main.py", size=1000) + b"x" * 10), "truncated_archive", "", id="short-data"),
    P(VALID + b"garbage", "trailing_data", "after the gzip", id="garbage-after-gzip"),
    P(VALID + b"\x00", "trailing_data", "after the gzip", id="zero-after-gzip"),
    P(VALID + gz(b""), "trailing_data", "after the gzip", id="second-gzip-member"),
    P(gz(TOP + MAIN + END + pad(b"junk")), "trailing_data", "end-of-archive", id="data-after-end"),
    P(gz(TOP + MAIN + bytes(512) + SUB + END), "trailing_data", "zero block", id="lone-zero-block"),
    # malformed headers
    P(tgz(header(b"svc/x.txt", checksum=1)), "bad_tar_header", "'svc/x.txt': checksum", id="bad-checksum"),
    P(tgz(header(b"svc/x.txt", size_field=b"12345678901x")), "bad_tar_header", "'svc/x.txt'", id="size-9"),
    P(tgz(header(b"svc/x.txt", magic=b"ustar\x00\x00\x00")), "bad_tar_header", "'svc/x.txt'", id="magic"),
    P(tgz(entry(b"svc/d/", b"data", typeflag=b"5")), "bad_tar_header", "'svc/d/': directory", id="dir-data"),
    P(tgz(pax([(b"comment", b"x")])), "bad_tar_header", "not followed", id="dangling-pax"),
    P(tgz(longname(b"svc/a.txt"), longname(b"svc/b.txt")), "bad_tar_header", "two GNU", id="two-longnames"),
    P(tgz(entry(b"p", b"9 x=y\n", typeflag=b"x")), "bad_pax_header", "malformed", id="pax-short-length"),
    P(tgz(entry(b"p", b"05 x=\n", typeflag=b"x")), "bad_pax_header", "length", id="pax-leading-zero"),
    P(tgz(entry(b"p", b"6 xy\n\n", typeflag=b"x")), "bad_pax_header", "malformed", id="pax-no-equals"),
    P(tgz(entry(b"p", b"7 a=b\n" + b"junk", typeflag=b"x")), "bad_pax_header", "", id="pax-trailing-junk"),
    P(tgz(pax([(b"a", b"1"), (b"a", b"2")])), "bad_pax_header", "repeated", id="pax-dup-key"),
    P(tgz(pax([(b"path", b"svc/g.txt")], b"g")), "bad_pax_header", "global", id="global-path"),
    P(tgz(pax([(b"path", b"")]), entry(b"svc/e.txt")), "bad_pax_header", "empty path", id="pax-empty-path"),
    P(tgz(pax([(b"size", b"-1")]), entry(b"svc/e.txt")), "bad_pax_header", "'svc/e.txt'", id="pax-bad-size"),
    P(tgz(pax([(b"a", b"1")]), pax([(b"b", b"2")]), MAIN), "bad_pax_header", "two pax", id="two-pax"),
    P(tgz(pax([(b"comment", b"x" * 20_000)]), entry(b"svc/a")), "header_too_large", "", id="big-pax"),
    P(tgz(longname(b"svc/" + b"a" * 17_000)), "header_too_large", "", id="big-longname"),
    # member names
    P(bare(entry(b"/svc/main.py", b"x")), "bad_member_name", "'/svc/main.py': absolute", id="absolute"),
    P(tgz(entry(b"svc/../escape/x.py", b"x")), "bad_member_name", "'svc/../escape/x.py'", id="dotdot"),
    P(bare(entry(b"../escape/main.py", b"x")), "bad_member_name", "'..'", id="dotdot-first"),
    P(tgz(entry(b"svc/./x.py", b"x")), "bad_member_name", "'svc/./x.py': '.'", id="dot"),
    P(tgz(entry(b"././svc/x.py", b"x")), "bad_member_name", "'.'", id="double-dot-slash"),
    P(tgz(entry(b"svc\\..\\escape.py", b"x")), "bad_member_name", "backslash", id="backslash"),
    P(bare(entry(b"C:/svc/main.py", b"x")), "bad_member_name", "'C:/svc/main.py'", id="drive-letter"),
    P(tgz(entry(b"svc/a:b.txt", b"x")), "bad_member_name", "':'", id="colon"),
    P(tgz(entry(b"svc/a\x01b.py", b"x")), "bad_member_name", "U+0001", id="control-char"),
    P(tgz(entry(b"svc/a\nb.py", b"x")), "bad_member_name", "U+000A", id="newline"),
    P(tgz(entry("svc/\u202eyp.txt".encode(), b"x")), "bad_member_name", "U+202E", id="bidi-override"),
    P(tgz(pax([(b"path", b"svc/a\x00b.py")]), entry(b"svc/ok.py")), "bad_member_name", "U+0000", id="nul"),
    P(tgz(entry(b"svc/\xff.py", b"x")), "bad_member_name", "UTF-8", id="not-utf8"),
    P(
        tgz(pax([(b"path", b"svc/\xc3.py")]), entry(b"svc/ok.py")),
        "bad_member_name",
        "UTF-8",
        id="pax-not-utf8",
    ),
    P(tgz(entry(b"svc//x.py", b"x")), "bad_member_name", "'svc//x.py': empty", id="empty-component"),
    P(tgz(entry(b"svc/x.py/", b"x")), "bad_member_name", "'svc/x.py/': empty", id="file-with-slash"),
    P(tgz(entry(b"", b"x")), "bad_member_name", "empty", id="empty-name"),
    P(
        tgz(pax([(b"path", b"svc/../../escape/evil.py")]), entry(b"svc/ok.py", b"x")),
        "bad_member_name",
        "'svc/../../escape/evil.py'",
        id="pax-path-dotdot",
    ),
    P(
        tgz(longname(b"svc/../escape/evil.py"), entry(b"svc/ok.py", b"x")),
        "bad_member_name",
        "'svc/../escape/evil.py'",
        id="longname-dotdot",
    ),
    P(tgz(entry(b"evil.py", b"x", prefix=b"svc/..")), "bad_member_name", "'svc/../evil.py'", id="prefix"),
    # member types
    P(
        tgz(entry(b"svc/l", typeflag=b"2", linkname=b"../../escape")),
        "bad_member_type",
        "'svc/l'",
        id="symlink",
    ),
    P(
        tgz(entry(b"svc/h", typeflag=b"1", linkname=b"svc/main.py")),
        "bad_member_type",
        "hard link",
        id="hardlink",
    ),
    P(tgz(entry(b"svc/c", typeflag=b"3")), "bad_member_type", "character device", id="chardev"),
    P(tgz(entry(b"svc/b", typeflag=b"4")), "bad_member_type", "block device", id="blockdev"),
    P(tgz(entry(b"svc/f", typeflag=b"6")), "bad_member_type", "'svc/f': FIFO", id="fifo"),
    P(tgz(entry(b"svc/c.txt", b"x", typeflag=b"7")), "bad_member_type", "contiguous", id="contiguous"),
    P(tgz(entry(b"svc/s.txt", b"x", typeflag=b"S")), "bad_member_type", "sparse", id="gnu-sparse"),
    P(
        tgz(entry(b"././@LongLink", b"x\x00", typeflag=b"K")),
        "bad_member_type",
        "long link",
        id="gnu-longlink",
    ),
    P(tgz(entry(b"label", typeflag=b"V")), "bad_member_type", "volume", id="volume-label"),
    P(tgz(entry(b"svc/d/", typeflag=b"D")), "bad_member_type", "dump", id="dumpdir"),
    P(tgz(entry(b"svc/m", typeflag=b"M")), "bad_member_type", "multi-volume", id="multivolume"),
    P(tgz(entry(b"svc/z", typeflag=b"Z")), "bad_member_type", "'svc/z': unknown", id="unknown-type"),
    P(
        tgz(pax([(b"linkpath", b"/etc/passwd")]), entry(b"svc/x.txt", b"x")),
        "bad_member_type",
        "link target",
        id="pax-linkpath",
    ),
    P(
        tgz(pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0")]), entry(b"svc/x.txt", b"x")),
        "bad_member_type",
        "sparse",
        id="pax-sparse",
    ),
    # duplicates and collisions
    P(tgz(entry(b"svc/main.py", b"again")), "duplicate_member", "'svc/main.py': duplicate", id="dup-file"),
    P(tgz(directory(b"svc/sub/")), "duplicate_member", "'svc/sub/'", id="dup-dir"),
    P(tgz(entry(b"./svc/main.py", b"again")), "duplicate_member", "'./svc/main.py'", id="dup-dot-slash"),
    P(tgz(entry(b"svc/Main.py", b"x")), "name_collision", "'svc/Main.py'", id="case"),
    P(tgz(entry(b"svc/MAIN.PY", b"x")), "name_collision", "'svc/MAIN.PY'", id="upper"),
    P(
        tgz(entry(b"svc/Stra\xc3\x9fe", b"x"), entry(b"svc/STRASSE", b"x")),
        "name_collision",
        "",
        id="casefold",
    ),
    P(tgz(entry("svc/\u00e9".encode()), entry("svc/e\u0301".encode())), "name_collision", "", id="nfc"),
    P(tgz(entry(b"svc/a", b"x"), directory(b"svc/a/")), "name_collision", "'svc/a/'", id="file-then-dir"),
    P(tgz(entry(b"svc/a", b"x"), entry(b"svc/a/b", b"x")), "name_collision", "'svc/a/b'", id="file-parent"),
    P(tgz(directory(b"svc/x/"), entry(b"svc/X", b"x")), "name_collision", "'svc/X'", id="dir-then-file"),
    P(tgz(entry(b"svc/sub", b"x")), "name_collision", "'svc/sub'", id="file-over-dir"),
    P(tgz(entry(b"svc/SUB/y.txt", b"x")), "name_collision", "'svc/SUB/y.txt'", id="implied-parent-case"),
    # layout
    P(tgz(directory(b"other/")), "bad_layout", "'other/': second top-level", id="two-top-dirs"),
    P(tgz(entry(b"other/main.py", b"x")), "bad_layout", "'other/main.py'", id="two-tops-via-file"),
    P(tgz(entry(b"SVC/x.py", b"x")), "bad_layout", "'SVC/x.py'", id="top-case-variant"),
    P(bare(entry(b"main.py", b"x")), "bad_layout", "'main.py': file at the top level", id="top-level-file"),
    P(tgz(entry(b"README", b"x")), "bad_layout", "'README'", id="top-level-file-later"),
    P(bare(), "bad_layout", "no service directory", id="empty-tar"),
    P(bare(directory(b"./")), "bad_layout", "no service directory", id="only-root"),
    P(bare(entry(b"Svc/main.py", b"x")), "bad_service_name", "'Svc/main.py'", id="uppercase-name"),
    P(bare(entry(b"1svc/main.py", b"x")), "bad_service_name", "'1svc/main.py'", id="digit-name"),
    P(bare(directory(b"my-svc/")), "bad_service_name", "'my-svc/'", id="dash-name"),
    P(bare(directory(b"s" * 65 + b"/")), "bad_service_name", "s" * 65, id="long-name"),
    P(bare(entry(b"orchestrator/main.py", b"x")), "bad_service_name", "reserved", id="reserved-orchestrator"),
    P(bare(entry(b"node/main.py", b"x")), "bad_service_name", "reserved", id="reserved-node"),
    P(bare(directory(b"svc/"), directory(b"svc/src/")), "missing_main", "svc/main.py", id="no-main"),
    P(bare(TOP, directory(b"svc/main.py/")), "missing_main", "main.py", id="main-is-dir"),
    P(bare(TOP, entry(b"svc/src/main.py", b"x")), "missing_main", "main.py", id="main-nested"),
    # compiled or native code
    P(tgz(entry(b"svc/x.pyc", b"x")), "forbidden_file", "'svc/x.pyc'", id="pyc"),
    P(tgz(entry(b"svc/X.PYC", b"x")), "forbidden_file", "'svc/X.PYC'", id="pyc-upper"),
    P(tgz(entry(b"svc/x.pyo", b"x")), "forbidden_file", "'svc/x.pyo'", id="pyo"),
    P(tgz(entry(b"svc/__pycache__/x.py", b"x")), "forbidden_file", "__pycache__", id="pycache"),
    P(tgz(directory(b"svc/__pycache__/")), "forbidden_file", "__pycache__", id="pycache-dir"),
    P(tgz(entry(b"svc/json.so", b"x")), "forbidden_file", "'svc/json.so'", id="so"),
    P(tgz(entry(b"svc/m.cpython-311-x86_64-linux-gnu.so", b"x")), "forbidden_file", "cpython", id="ext"),
    P(tgz(entry(b"svc/lib/libx.so.1.2", b"x")), "forbidden_file", "libx.so.1.2", id="versioned-so"),
    P(tgz(entry(b"svc/x.pyd", b"x")), "forbidden_file", "'svc/x.pyd'", id="pyd"),
    P(tgz(entry(b"svc/x.dll", b"x")), "forbidden_file", "'svc/x.dll'", id="dll"),
    P(tgz(entry(b"svc/x.dylib", b"x")), "forbidden_file", "'svc/x.dylib'", id="dylib"),
    P(tgz(entry(b"svc/evil.pth", b"import os")), "forbidden_file", "'svc/evil.pth'", id="pth"),
    # limits
    P(tgz(entry(b"svc/" + b"a" * 96, b"x", prefix=b"svc" + b"/b" * 60)), "path_too_deep", "", id="deep"),
    P(tgz(pax([(b"path", b"svc/" + b"a" * 252)]), entry(b"svc/x", b"x")), "path_too_long", "aaa", id="long"),
    P(
        tgz(pax([(b"path", b"svc/" + "é".encode() * 126)]), entry(b"svc/x", b"x")),
        "path_too_long",
        "é",
        id="long-utf8",
    ),
    # manifest and configuration
    P(tgz(manifest({"event_loop": "gevent"})), "bad_manifest", "event_loop", id="manifest-event-loop"),
    P(tgz(entry(b"svc/manifest.json", b"{")), "bad_manifest", "manifest.json", id="manifest-not-json"),
    P(tgz(manifest([1])), "bad_manifest", "object", id="manifest-array"),
    P(tgz(manifest({"version": "1.0"})), "bad_version", "'1.0'", id="manifest-version"),
    P(tgz(manifest({"dependencies": ["svc"]})), "bad_dependency", "itself", id="self-dependency"),
    P(
        tgz(entry(b"svc/manifest.json", b" " * 70_000)),
        "manifest_too_large",
        "manifest.json",
        id="big-manifest",
    ),
    P(tgz(entry(b"svc/config/default.json", b"[1]")), "bad_config", "config/default.json", id="config-array"),
    P(tgz(entry(b"svc/config/default.json", b'{"a":1,"a":2}')), "bad_config", "duplicate", id="config-dup"),
    P(tgz(entry(b"svc/config/default.json", b" " * 70_000)), "bad_config", "larger", id="config-size"),
]

LIMITED = [
    P(tgz(), ArchiveLimits(max_members=3), "too_many_members", "more than 3", id="members"),
    P(tgz(), ArchiveLimits(max_path_depth=1), "path_too_deep", "'svc/sub/data.txt'", id="depth-limit"),
    P(tgz(), ArchiveLimits(max_path_length=12), "path_too_long", "'svc/sub/data.txt'", id="length-limit"),
    P(
        tgz(entry(b"svc/big.bin", bytes(10_000))),
        ArchiveLimits(max_uncompressed_bytes=8192),
        "uncompressed_too_large",
        "'svc/big.bin'",
        id="declared-size",
    ),
    P(
        tgz(),
        ArchiveLimits(max_uncompressed_bytes=1000),
        "uncompressed_too_large",
        "expands",
        id="stream-size",
    ),
    P(tgz(), ArchiveLimits(max_compressed_bytes=100), "archive_too_large", "100 bytes", id="compressed-size"),
    P(
        tgz(pax([(b"comment", b"x" * 100)]), entry(b"svc/a", b"x")),
        ArchiveLimits(max_header_bytes=64),
        "header_too_large",
        "64 bytes",
        id="header-limit",
    ),
    P(
        tgz(manifest({"description": "x" * 200})),
        ArchiveLimits(max_manifest_bytes=100),
        "manifest_too_large",
        "",
        id="m",
    ),
]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    target = tmp_path / "work" / "dest"
    target.mkdir(parents=True)
    return target


def assert_refused(data: bytes, dest: Path, code: str, fragment: str, limits: ArchiveLimits) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        unpack_archive(io.BytesIO(data), dest, limits=limits)
    assert info.value.code == code, info.value
    assert fragment in info.value.message
    assert os.listdir(dest) == []
    assert os.listdir(dest.parent) == ["dest"]


@pytest.mark.parametrize(("data", "code", "fragment"), CASES)
def test_refused(data: bytes, code: str, fragment: str, dest: Path) -> None:
    assert_refused(data, dest, code, fragment, ArchiveLimits())


@pytest.mark.parametrize(("data", "limits", "code", "fragment"), LIMITED)
def test_refused_by_limit(data: bytes, limits: ArchiveLimits, code: str, fragment: str, dest: Path) -> None:
    assert_refused(data, dest, code, fragment, limits)


def test_builder_makes_valid_archives(dest: Path) -> None:
    data = tgz(pax([(b"comment", b"ok")], b"g"), longname(b"svc/" + b"l" * 150), entry(b"svc/x", b"long"))
    result = unpack_archive(io.BytesIO(data), dest)
    assert result.files_count == 3
    assert (dest / ("l" * 150)).read_bytes() == b"long"
    assert (dest / "sub" / "data.txt").read_bytes() == b"payload\n"
