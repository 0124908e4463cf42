"""The storage layer: how ekm writes, reads and locks the files of a home.

* :mod:`ekm.storage.atomic`: atomic, durable, checked writes (temporary file, write every byte,
  fsync, rename, fsync the directory) and reads that refuse links, FIFOs and absurd sizes;
* :mod:`ekm.storage.paths`: permission and ownership checks, and confinement: a path inside a
  home is opened component by component relative to the home's directory descriptor with
  ``O_NOFOLLOW``, so no symlink in the home leads ekm outside it;
* :mod:`ekm.storage.lock`: the advisory lock that makes one writer at a time per home;
* :mod:`ekm.storage.faults`: the fault-injection seam the test suite uses to fail writes.

``ekm.fsutil`` re-exports the public names for older imports.
"""
