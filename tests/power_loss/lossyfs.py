#!/usr/bin/env python3
"""A FUSE file system that loses unsynced writes when its power is cut.

    lossyfs.py DISK WORK MOUNTPOINT

DISK is the "disk": what survives a power cut. At start WORK is made a copy
of DISK, and the mount shows WORK: every read and write goes there at once,
as a page cache would. A file's writes reach DISK only when the file is
fsynced (fsync or fdatasync): its changed byte ranges and its size are then
written to DISK. A directory's changes (files created, removed, renamed)
reach DISK when the directory is fsynced, or, for a file, when the file
itself is fsynced (as ext4 commits a new file's entry with its inode).

The power is cut by killing this process with SIGKILL: what was not synced
to DISK is gone, exactly as a page cache is at a power cut. DISK then holds
the state a machine would reboot with.

Used by tests/e2e/power_loss.rs; needs root (or fusermount3), /dev/fuse and
the `mfusepy` module (libfuse 3).
"""

import errno
import os
import shutil
import sys
import threading

import mfusepy as fuse


class LossyFS(fuse.Operations):
    use_ns = True

    def __init__(self, disk, work):
        self.disk = disk
        self.work = work
        self.guard = threading.Lock()
        # path -> list of (offset, length) written since its last fsync
        self.dirty = {}

    def _work(self, path):
        return os.path.join(self.work, path.lstrip("/"))

    def _disk(self, path):
        return os.path.join(self.disk, path.lstrip("/"))

    def _touch(self, path, offset, length):
        with self.guard:
            self.dirty.setdefault(path, []).append((offset, length))

    # Metadata

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._work(path))
        except OSError as error:
            raise fuse.FuseOSError(error.errno)
        return {
            "st_mode": st.st_mode,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._work(path))

    def access(self, path, amode):
        if not os.access(self._work(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path, mode):
        os.chmod(self._work(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.chown(self._work(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._work(path), ns=times) if times else os.utime(self._work(path))
        return 0

    def statfs(self, path):
        st = os.statvfs(self._work(path))
        return {
            key: getattr(st, key)
            for key in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    def mkdir(self, path, mode):
        os.mkdir(self._work(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self._work(path))
        return 0

    def unlink(self, path):
        os.unlink(self._work(path))
        with self.guard:
            self.dirty.pop(path, None)
        return 0

    def rename(self, old, new):
        os.rename(self._work(old), self._work(new))
        with self.guard:
            ranges = self.dirty.pop(old, None)
            # The renamed file's content is unsynced as a whole at its new name.
            size = os.path.getsize(self._work(new)) if os.path.isfile(self._work(new)) else 0
            self.dirty[new] = (ranges or []) + [(0, size)]
        return 0

    # Files

    def open(self, path, flags):
        return os.open(self._work(path), flags & ~os.O_CREAT)

    def create(self, path, mode, fi=None):
        fd = os.open(self._work(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)
        self._touch(path, 0, 0)
        return fd

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        written = os.pwrite(fh, data, offset)
        self._touch(path, offset, written)
        return written

    def truncate(self, path, length, fh=None):
        with open(self._work(path), "r+b") as handle:
            handle.truncate(length)
        self._touch(path, length, 0)
        return 0

    def fallocate(self, path, mode, offset, size, fh):
        os.posix_fallocate(fh, offset, size)
        self._touch(path, offset, 0)
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        self._sync_file(path)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self._sync_dir(path)
        return 0

    # Making writes durable

    def _sync_file(self, path):
        with self.guard:
            ranges = self.dirty.pop(path, [])
            work = self._work(path)
            disk = self._disk(path)
            os.makedirs(os.path.dirname(disk), exist_ok=True)
            new = not os.path.exists(disk)
            size = os.path.getsize(work)
            with open(work, "rb") as source, open(disk, "r+b" if not new else "w+b") as target:
                if new:
                    ranges = [(0, size)]
                for offset, length in ranges:
                    source.seek(offset)
                    target.seek(offset)
                    target.write(source.read(length))
                target.truncate(size)
                target.flush()
                os.fsync(target.fileno())
            shutil.copymode(work, disk)

    def _sync_dir(self, path):
        with self.guard:
            work = self._work(path)
            disk = self._disk(path)
            os.makedirs(disk, exist_ok=True)
            present = set(os.listdir(work))
            for name in os.listdir(disk):
                if name not in present:
                    target = os.path.join(disk, name)
                    if os.path.isdir(target):
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
            for name in present:
                source = os.path.join(work, name)
                target = os.path.join(disk, name)
                if os.path.isdir(source):
                    os.makedirs(target, exist_ok=True)
                elif not os.path.exists(target):
                    # A new entry: its data is whatever was synced, none yet.
                    open(target, "wb").close()
                    shutil.copymode(source, target)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    disk, work, mountpoint = sys.argv[1:]
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(disk, work)
    fuse.FUSE(LossyFS(disk, work), mountpoint, foreground=True, nothreads=False)


if __name__ == "__main__":
    main()
