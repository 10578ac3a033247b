/**
 * What the HTML reports share (`simulate --report`, `probe --report`): text
 * escaped for HTML, and Observable Plot figures drawn on linkedom's DOM as
 * inline SVG, so that a report is one self-contained file with no script.
 */
import * as Plot from '@observablehq/plot';
import { parseHTML } from 'linkedom';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One figure as inline SVG markup; `options` override the reports' common size and style. */
export function plotSvg(options: Plot.PlotOptions): string {
  const { document } = parseHTML('<!doctype html><html><body></body></html>');
  const node = Plot.plot({
    document,
    width: 860,
    height: 300,
    marginLeft: 60,
    style: { fontSize: '12px', background: 'white' },
    ...options,
  });
  // Inline SVG in HTML needs no namespace declarations.
  return node.outerHTML.replace(/ xmlns(:xlink)?="[^"]*"/g, '');
}
