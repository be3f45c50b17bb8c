// Injected by esbuild into the CommonJS output (compile-commonjs.ts): the file URL an ES module would see as
// import.meta.url. Pure (no global read outside the call), so that only the modules that read it keep it.
export const importMetaUrl = /* @__PURE__ */ thisFileUrl()

function thisFileUrl(): string {
  return (require('node:url') as typeof import('node:url')).pathToFileURL(__filename).href
}
