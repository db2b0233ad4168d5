// Shared helpers of the dashboard tests: the browser, pages that watch for console errors and
// requests to other hosts, sign-in, screenshots and a small registry client for the facts the
// pages must show (digests, tags) straight from berth's /v2 API.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name} (e2e/run.sh does)`);
  return v;
}

export const BASE = need('BERTH_URL').replace(/\/+$/, '');
export const ORIGIN = new URL(BASE).origin;
export const HOST = new URL(BASE).host;
export const ADMIN_PASS = need('ADMIN_PASS');
export const VIEWER_PASS = need('VIEWER_PASS');
export const READER_PASS = process.env.READER_PASS || '';
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Without the background-networking flags, Chromium keeps trying to reach Google's hosts,
// which this closed network refuses.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}

// Answers whether the dashboard is served at all, so that every test can fail at once with one
// clear reason instead of timing out on selectors.
let dashboardProblem;
export async function checkDashboard() {
  if (dashboardProblem !== undefined) return dashboardProblem;
  try {
    const r = await fetch(`${BASE}/signin`, { redirect: 'manual' });
    const type = r.headers.get('content-type') || '';
    dashboardProblem = r.status === 200 && type.startsWith('text/html')
      ? null
      : `the dashboard is not served: GET ${BASE}/signin answered ${r.status} ${type}`;
  } catch (e) {
    dashboardProblem = `GET ${BASE}/signin failed: ${e.message}`;
  }
  return dashboardProblem;
}

// Runs fn(page, context) in a fresh browser context (no cookies), then fails the test when the
// page logged a console error or an uncaught exception, or asked any host but berth's.
//   opts.viewport           default 1280x800
//   opts.javaScriptEnabled  default true
//   opts.allowConsole       regexps of console errors that this test expects (e.g. a 404)
export async function withPage(browser, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  const problem = await checkDashboard();
  if (problem) assert.fail(problem);
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: opts.viewport || DESKTOP,
    javaScriptEnabled: opts.javaScriptEnabled ?? true,
    serviceWorkers: 'block',
  });
  const consoleErrors = [];
  const foreign = [];
  const allow = opts.allowConsole || [];
  context.on('request', (req) => {
    const url = req.url();
    if (!/^(https?|wss?):/i.test(url)) return; // data:, blob:, about:
    if (new URL(url).origin !== ORIGIN) foreign.push(`${req.method()} ${url}`);
  });
  context.on('page', (page) => watch(page));
  function watch(page) {
    page.setDefaultTimeout(5_000);
    page.setDefaultNavigationTimeout(15_000);
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = `${msg.text()} (${msg.location().url || page.url()})`;
      if (!allow.some((re) => re.test(msg.text()))) consoleErrors.push(text);
    });
    page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message} (${page.url()})`));
  }
  const page = await context.newPage();
  try {
    await fn(page, context);
  } finally {
    await context.close();
  }
  assert.deepEqual({ consoleErrors, foreign }, { consoleErrors: [], foreign: [] },
    `console errors or requests to hosts other than ${ORIGIN} (a missing /favicon.ico is a console error too)`);
}

// Page helpers -------------------------------------------------------------------------------

// The submit control of a form: a <button> that is not type=button/reset, or an input.
export function submitOf(form) {
  return form.locator('button:not([type=button]):not([type=reset]), input[type=submit]').first();
}

export async function goto(page, path, expectStatus = 200) {
  const resp = await page.goto(path);
  assert.ok(resp, `no response for ${path}`);
  assert.equal(resp.status(), expectStatus, `GET ${path}: HTTP status`);
  return resp;
}

// Signs in through the form and waits for the landing page, /repository/.
export async function signIn(page, user, password) {
  await goto(page, '/signin');
  const form = page.locator('form[action="/signin"]');
  await form.locator('input[name=username]').fill(user);
  await form.locator('input[name=password]').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/repository/'),
    submitOf(form).click(),
  ]);
}

export async function text(locator) {
  return (await locator.innerText()).replace(/\s+/g, ' ').trim();
}

export async function shot(page, name) {
  if (!SCREENSHOT_DIR) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, name), fullPage: true });
}

export function tagRow(page, tag) {
  return page.locator(`table.tags tr.tag-row[data-tag="${tag}"]`);
}

export function repoRow(page, repo) {
  return page.locator(`tr.repo-row[data-repo="${repo}"]`);
}

// The data-tag of every tag row on the page.
export async function tagNames(page) {
  return page.locator('table.tags tr.tag-row').evaluateAll((rows) => rows.map((r) => r.dataset.tag));
}

export async function repoNames(page) {
  return page.locator('tr.repo-row').evaluateAll((rows) => rows.map((r) => r.dataset.repo));
}

// What the .kind cell of a tag row says.
export async function kindOf(row) {
  const kind = row.locator('.kind');
  assert.equal(await kind.count(), 1, 'one .kind cell in the row');
  const detail = kind.locator('.kind-detail');
  return {
    kind: await kind.getAttribute('data-kind'),
    label: await text(kind.locator('.kind-label')),
    detail: (await detail.count()) ? await text(detail.first()) : '',
    icons: await kind.locator('svg.icon').count(),
  };
}

// Registry facts, asked of berth's /v2 API as admin --------------------------------------------

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export function basic(user, pass) {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

export async function registry(path, init = {}) {
  const r = await fetch(`${BASE}${path}`, {
    ...init,
    headers: { Authorization: basic('admin', ADMIN_PASS), Accept: ACCEPT, ...(init.headers || {}) },
  });
  return r;
}

export async function manifest(repo, ref) {
  const r = await registry(`/v2/${repo}/manifests/${ref}`);
  assert.equal(r.status, 200, `GET /v2/${repo}/manifests/${ref}`);
  const body = await r.text();
  return { digest: r.headers.get('docker-content-digest'), json: JSON.parse(body), body };
}

export async function tagsOf(repo) {
  const r = await registry(`/v2/${repo}/tags/list?n=10000`);
  assert.equal(r.status, 200, `GET /v2/${repo}/tags/list`);
  return (await r.json()).tags || [];
}

export async function referrersOf(repo, digest) {
  const r = await registry(`/v2/${repo}/referrers/${digest}`, {
    headers: { Accept: 'application/vnd.oci.image.index.v1+json' },
  });
  assert.equal(r.status, 200, `GET /v2/${repo}/referrers/${digest}`);
  return (await r.json()).manifests || [];
}
