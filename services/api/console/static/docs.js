/* The /docs page: Swagger UI (from the swagger-ui-bundle package, served under /docs/static/)
 * showing /openapi.json.
 *
 * That package ships Swagger UI 4, which renders OpenAPI 3.0 only; the API's document is 3.1.
 * So the page shows a copy translated to 3.0 for display: `type: [T, "null"]` becomes
 * `type: T, nullable: true`, `const: v` becomes `enum: [v]`, a schema's `examples: [...]` its
 * `example`. The document itself (/openapi.json, /openapi.yaml) is served unchanged.
 * "Try it out" goes to this page's own origin; "Authorize" takes the API key (bearer).
 */
"use strict";

function toOpenApi30(node) {
  if (Array.isArray(node)) return node.map(toOpenApi30);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) out[key] = toOpenApi30(value);
  if (Array.isArray(out.type)) {
    const types = out.type.filter((t) => t !== "null");
    if (types.length < out.type.length) out.nullable = true;
    if (types.length === 1) out.type = types[0];
    else {
      delete out.type;
      if (types.length) out.anyOf = types.map((t) => ({ type: t }));
    }
  }
  if ("const" in out) {
    out.enum = [out.const];
    delete out.const;
  }
  if (Array.isArray(out.examples)) {
    if (out.examples.length) out.example = out.examples[0];
    delete out.examples;
  }
  return out;
}

async function showDocs() {
  const response = await fetch("/openapi.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
  const spec = toOpenApi30(await response.json());
  spec.openapi = "3.0.3";
  spec.servers = [{ url: location.origin, description: "this API" }];
  window.ui = SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}

showDocs().catch((error) => {
  const box = document.getElementById("docs-error");
  box.textContent = "Could not show the API reference: " + error.message;
  box.hidden = false;
});
