// The README's Mermaid pictures, rendered by Mermaid itself in headless
// Chromium, as the forge renders them: each must render without an error,
// with one node per node declaration and one cluster per subgraph, the
// counts tests/argocd/test_readme.py's parser reads from the same text (so
// what that test checks is what a reader sees). Offline: mermaid's
// self-contained bundle from node_modules, no network. Screenshots of both
// go to tests/ui/output/.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const OUTPUT = process.env.UI_OUTPUT_DIR ?? path.join(import.meta.dirname, 'output');
const README = path.join(import.meta.dirname, '..', '..', 'README.md');
const MERMAID = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');

// The declarations tests/argocd/test_readme.py accepts: a node on its own
// line (`id["…"]`, `id(["…"])`, `id[("…")]`), a subgraph with a title.
const NODE_LINE = /^\s*[A-Za-z]\w*(?:\["|\(\["|\[\(")/;
const SUBGRAPH_LINE = /^\s*subgraph \w+\["/;

const blocks = [...readFileSync(README, 'utf8').matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);

let browser;
let page;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage();
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ path: MERMAID });
  await page.evaluate(() => window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' }));
});

after(async () => {
  await browser?.close();
});

test('README.md holds the platform picture and the service picture', () => {
  assert.equal(blocks.length, 2);
});

for (const [index, text] of blocks.entries()) {
  test(`README diagram ${index + 1} renders with every node and subgraph it declares`, async () => {
    const lines = text.split('\n');
    const declaredNodes = lines.filter((line) => NODE_LINE.test(line)).length;
    const declaredSubgraphs = lines.filter((line) => SUBGRAPH_LINE.test(line)).length;
    const rendered = await page.evaluate(
      async ([id, source]) => {
        const { svg } = await window.mermaid.render(id, source);
        const doc = document.createElement('div');
        doc.innerHTML = svg;
        document.body.replaceChildren(doc);
        return {
          nodes: doc.querySelectorAll('g.node').length,
          clusters: doc.querySelectorAll('g.cluster').length,
          text: doc.textContent,
        };
      },
      [`readme-diagram-${index}`, text],
    );
    assert.equal(rendered.nodes, declaredNodes, 'one rendered node per declared node');
    assert.equal(rendered.clusters, declaredSubgraphs, 'one rendered cluster per subgraph');
    assert.doesNotMatch(rendered.text, /Syntax error/);
    mkdirSync(OUTPUT, { recursive: true });
    await page.locator('svg').first().screenshot({ path: path.join(OUTPUT, `readme-diagram-${index + 1}.png`) });
  });
}
