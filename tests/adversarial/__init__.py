"""Hostile input: the adversarial corpus, the audit guard and the fuzzing helpers.

- :mod:`.audit`: a process-wide audit hook that records every file opened (and
  any socket or subprocess) while a case runs, so a test can prove that
  nothing outside the case folder was touched and nothing was written.
- :mod:`.bundles`: builders for real bundles (OVF text templates, tar, qemu-img,
  genisoimage, openssl, gzip).
- :mod:`.cases`: the named corpus, each case with its expected message ids.
- :mod:`.fuzz`: hypothesis profiles, mutation strategies seeded from the samples,
  and the fuzz targets shared by the tests and ``tests/fuzz_campaign.py``.
"""
