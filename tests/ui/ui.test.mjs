// End-to-end tests of the web front end in headless Chromium, against the
// real service binary that tests/ui/run.sh starts on loopback:
//   UI_BASE_URL         a service on a fresh, empty SQLite database
//   UI_UNAVAILABLE_URL  a service whose database cannot be reached (503s)
// The tests run in order and share the first service's data.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

const BASE = requiredEnv('UI_BASE_URL');
const UNAVAILABLE = requiredEnv('UI_UNAVAILABLE_URL');
const OUTPUT = process.env.UI_OUTPUT_DIR ?? path.join(import.meta.dirname ?? '.', 'output');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 667 };

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run tests/ui/run.sh`);
  return value;
}

/** Retries `check` until it stops throwing or `timeout` ms have passed. */
async function eventually(check, timeout = 8000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function apiJson(method, urlPath, body) {
  const response = await fetch(`${BASE}${urlPath}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

async function createViaApi(student) {
  const { status, body } = await apiJson('POST', '/api/v1/students', student);
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

function assertSecurityHeaders(headers, what) {
  assert.equal(headers['content-security-policy'], CSP, what);
  assert.equal(headers['x-content-type-options'], 'nosniff', what);
  assert.equal(headers['referrer-policy'], 'no-referrer', what);
  assert.equal(headers['x-frame-options'], 'DENY', what);
}

// Chromium logs every HTTP error answer to fetch() as a console error. The
// API answers below (422, 409, 503) are what the tests provoke; anything
// else on the console (a script error, a CSP violation) fails the run.
const EXPECTED_API_ERROR =
  /^Failed to load resource: the server responded with a status of (409|422|503) /;
const consoleProblems = [];

function watchConsole(page) {
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const url = message.location()?.url ?? '';
    if (EXPECTED_API_ERROR.test(message.text()) && url.includes('/api/v1/students')) return;
    consoleProblems.push(`${message.type()}: ${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => consoleProblems.push(`uncaught: ${error.message}`));
}

let browser;

async function newPage(viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  watchConsole(page);
  return page;
}

const rowNames = (page) => page.locator('#rows th[scope=row]').allTextContents();

describe('the student records page', () => {
  let page;

  before(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = await newPage();
  });

  after(async () => {
    await browser?.close();
  });

  test('the page and its assets carry the CSP and the security headers', async () => {
    const assets = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname.startsWith('/assets/')) assets.push(response);
    });

    const response = await page.goto(`${BASE}/`);

    assert.equal(response.status(), 200);
    assertSecurityHeaders(response.headers(), 'page');
    assert.equal(response.headers()['cache-control'], 'no-cache');
    await page.getByRole('button', { name: 'New student' }).waitFor();
    await eventually(() => assert.equal(assets.length, 3));
    for (const asset of assets) {
      const what = new URL(asset.url()).pathname;
      assert.match(what, /^\/assets\/(app|icon)\.[0-9a-f]{16}\.(js|css|svg)$/);
      assert.equal(asset.status(), 200, what);
      assertSecurityHeaders(asset.headers(), what);
      assert.equal(asset.headers()['cache-control'], 'public, max-age=31536000, immutable', what);
    }
  });

  test('an empty database shows the empty state', async () => {
    await eventually(async () =>
      assert.match(await page.locator('#state-empty').textContent(), /^No students yet\./),
    );
    assert.ok(await page.locator('#state-empty').isVisible());
    assert.equal(await page.locator('#students').isVisible(), false);
    assert.equal(await page.locator('#total').textContent(), '(0)');
  });

  test('a student created with the keyboard alone is listed', async () => {
    await page.locator('body').focus();
    await page.keyboard.press('Tab'); // the skip link
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-student');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'New student' });
    await dialog.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-name');

    await page.keyboard.type('Ada Lovelace');
    await page.keyboard.press('Tab');
    await page.keyboard.type('ada@example.org');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Mathematics');
    await page.keyboard.press('Tab');
    await page.keyboard.type('9.4');
    await page.keyboard.press('Enter');

    await dialog.waitFor({ state: 'hidden' });
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Ada Lovelace']));
    const row = page.locator('#rows tr').first();
    const cells = await row.locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 3), ['ada@example.org', 'Mathematics', '9.4']);
    assert.match(cells[3], /^\d{4}-\d{2}-\d{2}$/, 'the day it was created');
    assert.equal(cells[4], 'EditDelete');
    assert.equal(await page.locator('#total').textContent(), '(1)');
    // Focus returns to the button that opened the dialog.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'new-student');
  });

  test('the search box filters through the API as one types, debounced', async () => {
    await createViaApi({ name: 'Grace Hopper', email: 'grace@example.org', domain: 'Computer Science', gpa: 9.1 });
    await page.reload();
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Ada Lovelace', 'Grace Hopper']));
    const queries = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/students') queries.push(url.searchParams.get('q'));
    });

    const search = page.getByRole('searchbox', { name: 'Search by name or email' });
    await search.pressSequentially('lovel', { delay: 40 });

    await eventually(async () => assert.deepEqual(await rowNames(page), ['Ada Lovelace']));
    assert.deepEqual(queries, ['lovel'], 'one request once typing pauses');
    assert.equal(await page.locator('#total').textContent(), '(1)');

    await search.fill('nobody-like-this');
    await eventually(async () =>
      assert.equal(await page.locator('#state-empty').textContent(), 'No students match “nobody-like-this”.'),
    );
    assert.ok(await page.locator('#state-empty').isVisible());

    await search.fill('');
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Ada Lovelace', 'Grace Hopper']));
  });

  test('validation errors show next to their fields and keep what was typed', async () => {
    await page.getByRole('button', { name: 'New student' }).click();
    const dialog = page.getByRole('dialog', { name: 'New student' });
    await dialog.waitFor();
    await dialog.getByLabel('Name').fill('   ');
    await dialog.getByLabel('Email').fill('not-an-email');
    await dialog.getByLabel('Field of study').fill('Physics');
    await dialog.getByLabel('GPA (0 to 10)').fill('11');

    await dialog.getByRole('button', { name: 'Save' }).click();

    await page.locator('#f-gpa-error').waitFor();
    for (const field of ['name', 'email', 'gpa']) {
      assert.equal(await page.locator(`#f-${field}`).getAttribute('aria-invalid'), 'true', field);
      assert.notEqual((await page.locator(`#f-${field}-error`).textContent()).trim(), '', field);
    }
    assert.equal(await page.locator('#f-domain').getAttribute('aria-invalid'), null);
    assert.equal(await page.locator('#f-domain-error').isVisible(), false);
    assert.match(await page.locator('#f-gpa-error').textContent(), /0 to 10/);
    // The message is the field's accessible description.
    assert.equal(await page.locator('#f-gpa').getAttribute('aria-describedby'), 'f-gpa-error');
    assert.equal(await dialog.getByLabel('Email').inputValue(), 'not-an-email');
    assert.equal(await dialog.getByLabel('Field of study').inputValue(), 'Physics');
    assert.equal(await dialog.getByLabel('GPA (0 to 10)').inputValue(), '11');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-name');
    await page.screenshot({ path: path.join(OUTPUT, 'form-errors.png') });
  });

  test('a duplicate email is shown on the email field and the input is kept', async () => {
    const dialog = page.getByRole('dialog', { name: 'New student' });
    await dialog.getByLabel('Name').fill('Ada Byron');
    await dialog.getByLabel('Email').fill('ada@example.org');
    await dialog.getByLabel('GPA (0 to 10)').fill('8.2');

    await dialog.getByRole('button', { name: 'Save' }).click();

    await eventually(async () =>
      assert.match(await page.locator('#f-email-error').textContent(), /already used/),
    );
    assert.equal(await page.locator('#f-email').getAttribute('aria-invalid'), 'true');
    for (const field of ['name', 'domain', 'gpa']) {
      assert.equal(await page.locator(`#f-${field}-error`).isVisible(), false, field);
    }
    assert.equal(await dialog.getByLabel('Name').inputValue(), 'Ada Byron');
    assert.equal(await dialog.getByLabel('Field of study').inputValue(), 'Physics');
    assert.equal(await dialog.getByLabel('GPA (0 to 10)').inputValue(), '8.2');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-email');
    await page.screenshot({ path: path.join(OUTPUT, 'form-duplicate-email.png') });

    await dialog.getByLabel('Email').fill('ada.byron@example.org');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    // The list shows the newest first, so the new student is on top.
    await eventually(async () =>
      assert.deepEqual(await rowNames(page), ['Ada Byron', 'Grace Hopper', 'Ada Lovelace']),
    );
    assert.equal(await page.locator('th[data-sort=created]').getAttribute('aria-sort'), 'descending');
  });

  test('a student is edited in the form', async () => {
    await page.getByRole('button', { name: 'Edit Ada Lovelace' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit Ada Lovelace' });
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel('Email').inputValue(), 'ada@example.org');

    await dialog.getByLabel('Name').fill('Ada King');
    await dialog.getByLabel('GPA (0 to 10)').fill('9.6');
    await dialog.getByRole('button', { name: 'Save' }).click();

    await dialog.waitFor({ state: 'hidden' });
    await eventually(async () =>
      assert.deepEqual(await rowNames(page), ['Ada Byron', 'Grace Hopper', 'Ada King']),
    );
    const adaRow = page.locator('#rows tr', { has: page.locator('th', { hasText: 'Ada King' }) });
    assert.equal(await adaRow.locator('td.num').textContent(), '9.6');
    const { body } = await apiJson('GET', '/api/v1/students?q=ada.byron');
    assert.equal(body.total, 1);
    const { body: ada } = await apiJson('GET', '/api/v1/students?q=ada@example.org');
    assert.equal(ada.data[0].name, 'Ada King');
    assert.equal(ada.data[0].gpa, 9.6);
  });

  test('pages past the first page', async () => {
    for (let i = 1; i <= 22; i += 1) {
      const n = String(i).padStart(2, '0');
      await createViaApi({ name: `Student ${n}`, email: `student${n}@example.org`, domain: 'History', gpa: 7 });
    }
    await page.reload();
    await eventually(async () => assert.equal((await rowNames(page)).length, 20));
    assert.equal(await page.locator('#total').textContent(), '(25)');
    assert.equal(await page.locator('#page-info').textContent(), '1–20 of 25');
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);
    await page.screenshot({ path: path.join(OUTPUT, 'list.png'), fullPage: true });

    const lists = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/students') lists.push(url.searchParams);
    });
    await page.getByRole('button', { name: 'Next page' }).click();

    await eventually(async () => assert.equal(await page.locator('#page-info').textContent(), '21–25 of 25'));
    // The next page is asked for by the cursor the first one gave, not by offset.
    assert.equal(lists.length, 1);
    assert.ok(lists[0].get('cursor'), lists[0].toString());
    assert.equal(lists[0].get('offset'), null);
    assert.deepEqual(await rowNames(page), ['Student 18', 'Student 19', 'Student 20', 'Student 21', 'Student 22']);
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);

    await page.getByRole('button', { name: 'Previous page' }).click();
    await eventually(async () => assert.equal(await page.locator('#page-info').textContent(), '1–20 of 25'));
  });

  test('delete asks for confirmation first', async () => {
    const { body: before } = await apiJson('GET', '/api/v1/students?q=grace@example.org');
    const grace = before.data[0];
    await page.getByRole('button', { name: 'Delete Grace Hopper' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Delete student?' });
    await confirm.waitFor();
    assert.match(await confirm.textContent(), /Grace Hopper \(grace@example\.org\)/);
    // Cancel is focused first: Enter alone must not delete.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel');

    await page.keyboard.press('Escape');
    await confirm.waitFor({ state: 'hidden' });
    assert.equal((await apiJson('GET', `/api/v1/students/${grace.id}`)).status, 200);
    assert.ok((await rowNames(page)).includes('Grace Hopper'));

    await page.getByRole('button', { name: 'Delete Grace Hopper' }).click();
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Delete' }).click();

    await confirm.waitFor({ state: 'hidden' });
    await eventually(async () => assert.ok(!(await rowNames(page)).includes('Grace Hopper')));
    assert.equal(await page.locator('#total').textContent(), '(24)');
    assert.equal((await apiJson('GET', `/api/v1/students/${grace.id}`)).status, 404);
  });

  test('a click on a column header sorts by it, and a second click reverses the order', async () => {
    await page.reload();
    await eventually(async () => assert.equal((await rowNames(page)).length, 20));
    const sorts = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/students') sorts.push(url.searchParams.get('sort'));
    });
    const sortOf = (column) => page.locator(`th[data-sort=${column}]`).getAttribute('aria-sort');
    assert.equal(await sortOf('gpa'), null, 'the default order is no column');

    await page.getByRole('button', { name: 'GPA', exact: true }).click();

    // Ties (every "Student" has 7) are broken by id, in the same direction.
    await eventually(async () => assert.deepEqual((await rowNames(page)).slice(0, 2), ['Student 01', 'Student 02']));
    assert.equal(await sortOf('gpa'), 'ascending');
    assert.equal(await sortOf('name'), null);

    await page.getByRole('button', { name: 'GPA', exact: true }).click();

    await eventually(async () =>
      assert.deepEqual((await rowNames(page)).slice(0, 3), ['Ada King', 'Ada Byron', 'Student 22']),
    );
    assert.equal(await sortOf('gpa'), 'descending');

    // The keyboard alone: the header is a button, Enter and Space press it.
    await page.getByRole('button', { name: 'Name', exact: true }).focus();
    await page.keyboard.press('Enter');
    await eventually(async () => assert.deepEqual((await rowNames(page)).slice(0, 3), ['Ada Byron', 'Ada King', 'Student 01']));
    assert.equal(await sortOf('name'), 'ascending');
    assert.equal(await sortOf('gpa'), null);
    await page.keyboard.press('Space');
    await eventually(async () => assert.deepEqual((await rowNames(page)).slice(0, 2), ['Student 22', 'Student 21']));
    assert.equal(await sortOf('name'), 'descending');
    assert.deepEqual(sorts, ['gpa', '-gpa', 'name', '-name']);
    await page.screenshot({ path: path.join(OUTPUT, 'sorted.png') });
  });

  test('pages by cursor in the chosen order, and back again', async () => {
    await page.getByRole('button', { name: 'Name', exact: true }).click();
    await eventually(async () => assert.deepEqual((await rowNames(page)).slice(0, 2), ['Ada Byron', 'Ada King']));
    const lists = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/students') lists.push(url.searchParams);
    });

    await page.getByRole('button', { name: 'Next page' }).click();

    await eventually(async () => assert.equal(await page.locator('#page-info').textContent(), '21–24 of 24'));
    assert.deepEqual(await rowNames(page), ['Student 19', 'Student 20', 'Student 21', 'Student 22']);
    assert.equal(lists[0].get('sort'), 'name');
    assert.ok(lists[0].get('cursor'));
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);

    await page.getByRole('button', { name: 'Previous page' }).click();

    await eventually(async () => assert.equal(await page.locator('#page-info').textContent(), '1–20 of 24'));
    assert.deepEqual((await rowNames(page)).slice(0, 2), ['Ada Byron', 'Ada King']);
    assert.equal(lists[1].get('cursor'), null, 'the first page has no cursor');
    assert.equal(lists[1].get('sort'), 'name');
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);
  });

  test('a search shorter than three characters is not sent, and the page says why', async () => {
    const queries = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/students') queries.push(url.searchParams.get('q'));
    });
    const search = page.getByRole('searchbox', { name: 'Search by name or email' });
    const hint = page.locator('#search-hint');
    assert.match(await hint.textContent(), /at least 3 characters/);
    // The hint is the search box's accessible description.
    assert.equal(await search.getAttribute('aria-describedby'), 'search-hint');

    await search.pressSequentially('ad', { delay: 40 });

    await eventually(async () => assert.match(await hint.getAttribute('class'), /hint-warning/));
    assert.match(await hint.textContent(), /Type at least 3 characters to search/);
    await new Promise((resolve) => setTimeout(resolve, 400)); // past the typing pause
    assert.deepEqual(queries, [], 'nothing sent for two characters');
    assert.equal((await rowNames(page)).length, 20);
    await page.screenshot({ path: path.join(OUTPUT, 'short-search.png') });

    await search.press('a');

    await eventually(async () => assert.deepEqual(await rowNames(page), ['Ada Byron', 'Ada King']));
    assert.deepEqual(queries, ['ada']);
    assert.doesNotMatch(await hint.getAttribute('class'), /hint-warning/);
    await search.fill('');
    await eventually(async () => assert.equal((await rowNames(page)).length, 20));
  });

  test('an estimated or unknown total is shown as such', async () => {
    const other = await newPage();
    try {
      const students = Array.from({ length: 20 }, (_, i) => ({
        id: i + 1,
        name: `Estimated ${i + 1}`,
        email: `estimated${i + 1}@example.org`,
        domain: 'History',
        gpa: 5,
        created_at: '2026-12-05T10:00:00Z',
        updated_at: '2026-12-05T10:00:00Z',
      }));
      let total = 123456;
      await other.route('**/api/v1/students?*', (route) =>
        route.fulfill({
          status: 200,
          contentType: 'application/json',
          body: JSON.stringify({ data: students, total, limit: 20, offset: 0, has_more: true, next_cursor: 'opaque' }),
        }),
      );

      await other.goto(`${BASE}/`);

      await eventually(async () => assert.equal(await other.locator('#total').textContent(), '(about 123,456)'));
      assert.equal(await other.locator('#page-info').textContent(), '1–20 of about 123,456');
      assert.equal(await other.getByRole('button', { name: 'Next page' }).isDisabled(), false);

      total = null;
      await other.reload();

      await eventually(async () => assert.equal(await other.locator('#page-info').textContent(), '1–20'));
      assert.equal(await other.locator('#total').textContent(), '');
      assert.match(await other.locator('#status').textContent(), /^Students, showing 1 to 20\.$/);
    } finally {
      await other.context().close();
    }
  });

  test('the layout fits a phone-sized screen', async () => {
    const phone = await newPage(PHONE);
    try {
      await phone.goto(`${BASE}/`);
      await eventually(async () => assert.equal((await rowNames(phone)).length, 20));

      const widths = await phone.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        row: document.querySelector('#rows tr').getBoundingClientRect().width,
      }));
      assert.ok(widths.page <= PHONE.width, `page is ${widths.page}px wide`);
      assert.ok(widths.row <= PHONE.width, `a row is ${widths.row}px wide`);
      const edit = phone.getByRole('button', { name: 'Edit Ada King' });
      assert.ok(await edit.isVisible());
      const box = await edit.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, JSON.stringify(box));
      await phone.screenshot({ path: path.join(OUTPUT, 'phone-list.png') });

      await edit.click();
      const dialog = phone.getByRole('dialog', { name: 'Edit Ada King' });
      await dialog.waitFor();
      const dialogBox = await dialog.boundingBox();
      assert.ok(dialogBox.width <= PHONE.width, JSON.stringify(dialogBox));
      await phone.screenshot({ path: path.join(OUTPUT, 'phone-form.png') });
    } finally {
      await phone.context().close();
    }
  });

  test('an unavailable service shows its state and a working Retry', async () => {
    const down = await newPage();
    try {
      let listRequests = 0;
      down.on('request', (request) => {
        if (new URL(request.url()).pathname === '/api/v1/students') listRequests += 1;
      });
      await down.goto(`${UNAVAILABLE}/`);

      const alert = down.locator('#state-error');
      await alert.waitFor({ timeout: 15000 });
      assert.match(await alert.textContent(), /unavailable/);
      assert.equal(await down.locator('#students').isVisible(), false);
      const retry = down.getByRole('button', { name: 'Retry' });
      assert.ok(await retry.isVisible());
      await down.screenshot({ path: path.join(OUTPUT, 'unavailable.png') });
      assert.equal(listRequests, 1);

      // A slow answer, so that the loading state has time to show.
      await down.route('**/api/v1/students?*', async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 800));
        await route.continue();
      });
      await retry.click();

      await down.locator('#state-loading').waitFor();
      assert.equal(await alert.isVisible(), false);
      await alert.waitFor({ timeout: 15000 });
      assert.equal(listRequests, 2);
      assert.match(await alert.textContent(), /unavailable/);
    } finally {
      await down.context().close();
    }
  });

  test('the console shows no errors', () => {
    assert.deepEqual(consoleProblems, []);
  });
});
