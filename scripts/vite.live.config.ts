/**
 * The live page's bundle (src/web/live → dist/web/live), built by `npm install`
 * (the prepare script) and `npm run build`. Everything the page needs is in
 * the bundle: `ksmkit status --serve` answers every request itself.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('../src/web/live/', import.meta.url));

export default defineConfig({
  root,
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web/live/', import.meta.url)),
    emptyOutDir: true,
    // No inline data: URLs for scripts (the page's policy allows script-src 'self' only).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
