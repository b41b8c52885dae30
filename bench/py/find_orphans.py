"""A stand-in for meph2-util find-orphans, which is not packaged for
Debian 12: the same algorithm (json.load of every products file the index
names, a set of item paths, os.walk of DATA_DIR, the rest recorded with
the time), so that bench/gc.sh can time the Python way on this machine.

    find_orphans.py ORPHANS.json DATA_DIR STREAM_DIR
"""
import json
import os
import sys
import time

orphans_f, data_d, stream = sys.argv[1:4]
idx = json.load(open(os.path.join(stream, "streams/v1/index.json")))
known = set()
for cid, e in idx["index"].items():
    prods = json.load(open(os.path.join(stream, e["path"])))
    for pname, p in prods["products"].items():
        for vname, v in p.get("versions", {}).items():
            for iname, i in v.get("items", {}).items():
                if "path" in i:
                    known.add(i["path"])
now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
orph = {}
for root, dirs, files in os.walk(data_d):
    if root == data_d:
        dirs[:] = [d for d in dirs if d not in ("streams", ".data")]
    for f in files:
        rel = os.path.relpath(os.path.join(root, f), data_d)
        if rel not in known:
            orph[rel] = now
with open(orphans_f, "w") as fp:
    json.dump(orph, fp, indent=1, sort_keys=True)
