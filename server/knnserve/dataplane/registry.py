"""Model registry: finds bundles laid out NAME/VERSION/, loads them, swaps versions in on reload.

A request names a model and optionally a version (default: the newest loaded). Reloading rescans
the folder: new or changed versions are loaded first, then the table is replaced in one step, so
a call in flight keeps the version it already holds and finishes on it; replaced versions'
batchers drain their queues before they stop. A bundle that fails to load is logged and skipped
(on reload the version already serving stays).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knnserve.bundle import MANIFEST, read_manifest
from knnserve.dataplane.batcher import BatchObserver, DirectSearcher, DynamicBatcher, Searcher
from knnserve.dataplane.config import BatchConfig
from knnserve.errors import BundleError, InvalidInputError
from knnserve.model import KNNModel
from knnserve.versions import SINGLE_BUNDLE_VERSION, is_complete, version_number
from knnserve_client.wire.errors import ModelNotFoundError, ModelsNotLoadedError

log = logging.getLogger(__name__)

# A name from a request is echoed in errors and logs only this long: a 1 MB name must not make a
# 1 MB error (which would itself exceed the metadata limit) or a 1 MB log line.
MAX_ECHOED_NAME = 64
MAX_NAMES_LISTED = 20
# How often a server that takes writes looks for records other processes appended to its logs.
LOG_WATCH_S = 0.2


def echo(name: str) -> str:
    """A caller-supplied name as errors show it: quoted, at most MAX_ECHOED_NAME characters."""
    if len(name) <= MAX_ECHOED_NAME:
        return repr(name)
    return f"{name[:MAX_ECHOED_NAME]!r}... ({len(name)} characters)"


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded version of one model, with the searcher (batcher) that answers its searches."""

    name: str
    version: int
    path: Path
    model: KNNModel
    searcher: Searcher
    fingerprint: str
    # The model's writes (knnserve.online.LiveModel) when this is the newest version on a server that takes them.
    live: Any | None = None

    @property
    def heads(self) -> tuple[str, ...]:
        """Heads this version serves: "knn", and "linear" when the bundle carries a linear head."""
        return self.model.heads


@dataclass(frozen=True)
class ReloadReport:
    """What one load or reload did: versions loaded, unloaded, kept, those that failed, and broken
    versions skipped because their files did not change since they failed."""

    loaded: tuple[tuple[str, int], ...] = ()
    unloaded: tuple[tuple[str, int], ...] = ()
    kept: tuple[tuple[str, int], ...] = ()
    failed: tuple[tuple[str, int, str], ...] = ()
    skipped: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class _Found:
    name: str
    version: int
    path: Path
    fingerprint: str


def _fingerprint(folder: Path) -> str:
    # The manifest lists every file's sha256, so a changed bundle always has a changed manifest.
    return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()


def stat_fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every file in a bundle folder: what a broken version is remembered by.

    Checking a broken bundle again would read (and hash) every byte of it on every SIGHUP; its
    files' sizes and mtimes tell, without reading them, that nothing changed since it failed.
    """
    entries = []
    for path in sorted(folder.iterdir()):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def scan_models_dir(root: Path) -> list[_Found]:
    """Bundles under ``root`` laid out NAME/VERSION/ (VERSION a positive integer; dot-folders skipped)."""
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder; --models expects a folder of NAME/VERSION/ bundles")
    found: list[_Found] = []
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            number = version_number(version_dir)
            if number is None:
                log.warning("skipping %s: a version folder must be named by a positive integer", version_dir)
                continue
            if not is_complete(version_dir):
                log.warning("skipping %s: no %s (not a bundle, or a partial one)", version_dir, MANIFEST)
                continue
            found.append(_Found(name_dir.name, number, version_dir, _fingerprint(version_dir)))
    return found


def scan_single_bundle(folder: Path) -> list[_Found]:
    """One bundle folder, served under its manifest's name as version 1."""
    manifest = read_manifest(folder)
    return [_Found(manifest.name, SINGLE_BUNDLE_VERSION, folder, _fingerprint(folder))]


SearcherFactory = Callable[[str, KNNModel], Searcher]


def searcher_factory(
    config: BatchConfig,
    loop: asyncio.AbstractEventLoop,
    *,
    pool: ThreadPoolExecutor | None = None,
    observer: BatchObserver | None = None,
    on_thread_start: Callable[[], None] | None = None,
    on_large_thread_start: Callable[[], None] | None = None,
) -> SearcherFactory:
    """Make a DynamicBatcher (batching on) or DirectSearcher (off, searching on ``pool``) per loaded model
    version, answering on ``loop``."""

    def make(label: str, model: KNNModel) -> Searcher:
        if not config.enabled:
            return DirectSearcher(model.search_features, loop, pool)
        return DynamicBatcher(model.search_features, config, loop, name=label, observer=observer,
                              on_thread_start=on_thread_start, on_large_thread_start=on_large_thread_start)

    return make


@dataclass
class ModelRegistry:
    """The table of served model versions, read by every call and replaced whole on reload."""

    models_dir: Path | None = None
    model_dir: Path | None = None
    # Default: no batching, searches on the running loop's default executor.
    make_searcher: SearcherFactory = lambda label, model: DirectSearcher(model.search_features, None, None)
    loader: Callable[[Path], KNNModel] = KNNModel.load
    # Where write-ahead logs live when the server takes writes (knnserve.online.OnlineConfig), else None.
    online: Any | None = None

    def __post_init__(self) -> None:
        if (self.models_dir is None) == (self.model_dir is None):
            raise ValueError("exactly one of models_dir and model_dir must be given")
        self._table: dict[str, dict[int, ServedModel]] = {}
        self._loaded = False
        self._reload_lock = threading.Lock()
        self._broken: dict[Path, tuple[tuple[str, int, int], ...]] = {}  # failed versions, by their files' stat
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()

    # -- reading (every call) -----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the first load finished with at least one model."""
        return self._loaded and bool(self._table)

    def get(self, name: str, version: int | None = None, *, field: str = "model") -> ServedModel:
        """The served version (default: newest) of model ``name``; NOT_FOUND / UNAVAILABLE errors otherwise."""
        if not name:
            raise InvalidInputError(field, "a model name (ListModels lists them)", "an empty string")
        if not self._loaded:
            raise ModelsNotLoadedError("models are still loading; retry shortly")
        table = self._table  # one read: the table is replaced whole, never mutated
        versions = table.get(name)
        if not versions:
            served = ", ".join(sorted(table)[:MAX_NAMES_LISTED]) or "none"
            raise ModelNotFoundError(f"model {echo(name)} is not served (served models: {served})")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            loaded = ", ".join(str(v) for v in sorted(versions))
            raise ModelNotFoundError(f"model {echo(name)} has no version {version} (loaded versions: {loaded})")
        return versions[version]

    def snapshot(self) -> dict[str, dict[int, ServedModel]]:
        """The current table (name -> version -> ServedModel); do not mutate it."""
        return self._table

    # -- loading (startup and SIGHUP) ---------------------------------------------------------

    def _scan(self) -> list[_Found]:
        if self.models_dir is not None:
            return scan_models_dir(self.models_dir)
        assert self.model_dir is not None
        return scan_single_bundle(self.model_dir)

    def reload(self) -> ReloadReport:
        """Rescan and load new or changed versions, drop removed ones; the first call is the initial load.

        Raises BundleError only when the folder itself cannot be read, or when the initial load
        finds nothing it can serve.
        """
        with self._reload_lock:
            old = self._table
            found = self._scan()
            new: dict[str, dict[int, ServedModel]] = {}
            loaded, kept, failed, skipped = [], [], [], []
            for entry in found:
                current = old.get(entry.name, {}).get(entry.version)
                if current is not None and current.fingerprint == entry.fingerprint:
                    new.setdefault(entry.name, {})[entry.version] = current
                    kept.append((entry.name, entry.version))
                    continue
                files = stat_fingerprint(entry.path)
                if self._broken.get(entry.path) == files:
                    skipped.append((entry.name, entry.version))  # failed before, unchanged since: not read again
                    if current is not None:
                        new.setdefault(entry.name, {})[entry.version] = current
                    continue
                try:
                    model = self.loader(entry.path)
                    model.warm_kernel()  # build the search kernel now, not in the first large request
                except (BundleError, InvalidInputError, OSError) as exc:
                    log.error("could not load %s version %d from %s: %s", entry.name, entry.version, entry.path, exc)
                    self._broken[entry.path] = files
                    failed.append((entry.name, entry.version, str(exc)))
                    if current is not None:
                        new.setdefault(entry.name, {})[entry.version] = current  # keep serving the old one
                        kept.append((entry.name, entry.version))
                    continue
                self._broken.pop(entry.path, None)
                label = f"{entry.name}:{entry.version}"
                served = ServedModel(entry.name, entry.version, entry.path, model, self.make_searcher(label, model), entry.fingerprint)
                new.setdefault(entry.name, {})[entry.version] = served
                loaded.append((entry.name, entry.version))
                log.info("loaded %s version %d from %s", entry.name, entry.version, entry.path)
            if not self._loaded and not new:
                source = self.models_dir or self.model_dir
                details = "; ".join(f"{n}/{v}: {m}" for n, v, m in failed) or "no NAME/VERSION/ bundle found"
                raise BundleError(f"{source}: no model could be loaded ({details})")
            if self.online is not None:
                self._go_live(new)
            self._table = new
            self._loaded = True
            retired = [
                served
                for name, versions in old.items()
                for version, served in versions.items()
                if getattr(new.get(name, {}).get(version), "searcher", None) is not served.searcher  # a live copy shares it
            ]
            for served in retired:
                served.searcher.close()  # drains its queue; late submissions are searched on a pool thread
            unloaded = tuple(
                (s.name, s.version) for s in retired if s.version not in new.get(s.name, {})
            )
            for name, version in unloaded:
                log.info("unloaded %s version %d", name, version)
            return ReloadReport(tuple(loaded), unloaded, tuple(kept), tuple(failed), tuple(skipped))

    def _go_live(self, table: dict[str, dict[int, ServedModel]]) -> None:
        """Give the newest version of each model its write-ahead log (replayed here) unless it has one."""
        from knnserve.online.live import LiveModel  # only servers that take writes load it
        from knnserve.online.records import RecordError
        from knnserve.online.wal import LogError

        for name, versions in table.items():
            newest = max(versions)
            served = versions[newest]
            if served.live is not None:
                continue
            path = self.online.log_path(name, newest, served.fingerprint)
            try:
                live = LiveModel(served.model, path, limits=self.online.limits, sync=self.online.sync,
                                 on_sealed=self._reload_soon)
            except (LogError, RecordError, OSError) as exc:
                raise BundleError(f"{name} version {newest}: its write-ahead log {path} cannot be replayed: {exc}") from exc
            versions[newest] = dataclasses.replace(served, live=live)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch_logs, name="log-watcher", daemon=True)
            self._watcher.start()

    def _watch_logs(self) -> None:
        """Catch up on what other processes append to the shared logs (``--workers``), between searches too:
        GetModel's counts follow, and a seal (another process's snapshot) is noticed without a search."""
        while not self._closed.wait(LOG_WATCH_S):
            for versions in self._table.values():
                for served in versions.values():
                    live = served.live
                    if live is None:
                        continue
                    try:
                        live.poll()
                    except Exception:  # keep watching; the next search or write reports the problem
                        log.exception("catching up on %s version %d's log failed", served.name, served.version)

    def _reload_soon(self) -> None:
        """Reload on a thread of its own: another process took a snapshot, so a new version is on disk."""

        def reload() -> None:
            try:
                self.reload()
            except Exception:  # a failed reload must not take the server down
                log.exception("reload after another process's snapshot failed; the loaded versions keep serving")

        threading.Thread(target=reload, name="reload-after-snapshot", daemon=True).start()

    def close(self) -> None:
        """Stop every batcher (after draining it) and close the write-ahead logs."""
        self._closed.set()
        with self._reload_lock:
            for versions in self._table.values():
                for served in versions.values():
                    served.searcher.close()
                    if served.live is not None:
                        served.live.close()


__all__ = ["ModelRegistry", "ReloadReport", "ServedModel", "scan_models_dir", "scan_single_bundle", "searcher_factory"]
