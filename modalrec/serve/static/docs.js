// The API reference, rendered from /openapi.json with no external assets (Swagger UI's come from a CDN).
"use strict";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()] || schema;
  return schema || {};
}

function describeSchema(spec, schema) {
  schema = resolve(spec, schema);
  if (schema.anyOf) return schema.anyOf.map(s => describeSchema(spec, s)).join(" or ");
  if (schema.type === "array") return "list of " + describeSchema(spec, schema.items);
  const limits = ["minimum", "maximum", "minLength", "maxLength", "pattern", "enum"]
    .filter(key => schema[key] !== undefined).map(key => `${key} ${JSON.stringify(schema[key])}`);
  return (schema.title && schema.properties ? schema.title : schema.type || "any") +
    (limits.length ? ` (${limits.join(", ")})` : "");
}

function operation(spec, path, method, op) {
  const box = element("section", undefined, "op");
  const title = element("h2");
  title.append(element("span", method.toUpperCase(), "method"), element("span", path, "path"));
  box.append(title);
  if (op.description) box.append(element("pre", op.description));
  const params = op.parameters || [];
  if (params.length) {
    const table = element("table");
    table.append(rowOf("th", ["parameter", "in", "required", "schema"]));
    for (const p of params) table.append(rowOf("td", [p.name, p.in, p.required ? "yes" : "no",
                                                      describeSchema(spec, p.schema)]));
    box.append(table);
  }
  if (op.requestBody) {
    for (const [kind, body] of Object.entries(op.requestBody.content || {})) {
      box.append(element("p", `body (${kind}): ` + JSON.stringify(resolve(spec, body.schema))));
    }
  }
  box.append(element("p", "answers: " + Object.keys(op.responses || {}).join(", "), "muted"));
  return box;
}

function rowOf(cell, values) {
  const row = element("tr");
  for (const value of values) row.append(element(cell, value));
  return row;
}

async function main() {
  const root = document.getElementById("docs");
  try {
    const spec = await (await fetch("/openapi.json")).json();
    root.textContent = "";
    root.append(element("pre", spec.info.description || ""));
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) root.append(operation(spec, path, method, op));
    }
  } catch (error) {
    root.textContent = "cannot load /openapi.json: " + error;
  }
}

main();
