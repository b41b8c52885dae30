"""A stand-in for meph2-util reap-orphans, which is not packaged for
Debian 12: the same algorithm (load the orphan file, os.remove every entry
older than the age, then rmdir its parents while they are empty, write the
rest back), so that bench/gc.sh can time the Python way on this machine.

    reap_orphans.py ORPHANS.json DATA_DIR OLDER_SECONDS
"""
import calendar
import json
import os
import sys
import time

orphans_f, data_d, older = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(orphans_f) as fp:
    orphans = json.load(fp)
now = time.time()
keep = {}
for rel, when in orphans.items():
    t = calendar.timegm(time.strptime(when, "%a, %d %b %Y %H:%M:%S +0000"))
    if now - t < older:
        keep[rel] = when
        continue
    path = os.path.join(data_d, rel)
    try:
        os.remove(path)
    except FileNotFoundError:
        continue
    d = os.path.dirname(path)
    while d != data_d and d.startswith(data_d):
        try:
            os.rmdir(d)
        except OSError:
            break
        d = os.path.dirname(d)
with open(orphans_f, "w") as fp:
    json.dump(keep, fp, indent=1, sort_keys=True)
