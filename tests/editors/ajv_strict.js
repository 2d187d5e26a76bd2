// Compile a JSON Schema with Ajv (draft 2020-12) in strict mode (every strict check on, union
// types such as `type: [string, number]` allowed); print each complaint.
// Usage: node ajv_strict.js SCHEMA.json   (exit 0: compiled, nothing to say)
const Ajv2020 = require("ajv/dist/2020");
const fs = require("fs");

const schema = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const complain = (message) => {
  console.log(message);
  process.exitCode = 1;
};
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true, logger: { log() {}, warn: complain, error: complain } });
try {
  ajv.compile(schema);
} catch (error) {
  complain(error.message);
}
