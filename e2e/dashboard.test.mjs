// End-to-end tests of berth's web dashboard: what a person sees in Chromium, against the content
// that e2e/seed.sh pushed with real clients. Run by e2e/run.sh (node --test); see README.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_PASS, BASE, HOST, PHONE, READER_PASS, VIEWER_PASS,
  basic, goto, kindOf, launch, manifest, referrersOf, repoNames, repoRow, shot, signIn,
  submitOf, tagNames, tagRow, tagsOf, text, withPage,
} from './helpers.mjs';

const SCRIPT = '<script>window.__pwned=1</script>';
const IMG = '<img src=x onerror=window.__pwned=1>';
const ODD_TAG = process.env.ODD_TAG || '_.-odd..TAG--0123456789abcdefghijklmnopqrstuvwxyz.v1_';
const NOT_FOUND = [/status of 404/];
const COSIGN_TAG = /^sha256-[0-9a-f]{64}\.(sig|att|sbom)$/;
const T = { timeout: 30_000 };

let browser;
const seed = {}; // digests of the seeded manifests, asked of the registry
before(async () => {
  browser = await launch();
  seed.image = await manifest('userorg/httpd-24', '1-30');
  seed.encrypted = await manifest('userorg/httpd-24', 'encrypted');
  seed.chart = await manifest('userorg/helm/quarkus', '0.0.3');
  seed.hostile = await manifest('userorg/hostile', 'annotated');
  seed.hostileChart = await manifest('userorg/hostile', '1.0.0');
  seed.sigTag = `sha256-${seed.image.digest.slice('sha256:'.length)}.sig`;
  seed.referrers = await referrersOf('userorg/httpd-24', seed.image.digest);
});
after(async () => {
  await browser?.close();
});

const tagsUrl = (repo, query = '') => `/repository/${repo}?tab=tags${query}`;
const manifestUrl = (repo, digest) => `/repository/${repo}/manifest/${digest}`;
const hex = (digest) => digest.replace(/^sha256:/, '');

// Asserts that the page shows no trace of the private repositories' tags or digests.
// (What the requested path itself holds may be echoed back.)
async function assertNoPrivateContent(page, path) {
  const html = await page.content();
  const leaks = ['1-30', 'to-delete', hex(seed.image.digest), hex(seed.encrypted.digest), seed.sigTag];
  for (const leak of leaks.filter((l) => !path.includes(l))) {
    assert.ok(!html.includes(leak), `the page leaks ${leak}`);
  }
  assert.equal(await page.locator('tr.tag-row').count(), 0, 'no tag rows');
}

// Markup from the registry must be text: shown literally, never run.
async function assertInert(page) {
  await page.waitForLoadState('load');
  assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined', 'window.__pwned was set');
  const scripts = await page.locator('script').evaluateAll((els) => els.map((e) => e.textContent));
  assert.ok(!scripts.some((s) => s.includes('__pwned')), 'a <script> element holds __pwned');
  assert.equal(await page.locator('img[onerror], [onerror], [onload]:not(body)').count(), 0, 'an element has an event-handler attribute');
  assert.equal(await page.locator('a[href^="javascript:" i]').count(), 0, 'a javascript: link');
  assert.equal(await page.locator('b:text-is("key")').count(), 0, 'markup of an annotation key was rendered');
}

describe('sign in and out', () => {
  test('the sign-in page has the form; a wrong password shows an error', T, async () => {
    await withPage(browser, { allowConsole: [/status of 40[013]/] }, async (page) => {
      await goto(page, '/signin');
      const form = page.locator('form[action="/signin"]');
      assert.equal(await form.count(), 1, 'form[action="/signin"]');
      assert.equal((await form.getAttribute('method') || '').toLowerCase(), 'post', 'the sign-in form posts');
      assert.equal(await form.locator('input[name=username]').count(), 1);
      assert.equal(await form.locator('input[name=password]').getAttribute('type'), 'password');
      assert.ok(await submitOf(form).isVisible(), 'a submit button');
      await shot(page, 'signin.png');

      const wrong = `wrong-${Date.now()}`;
      await form.locator('input[name=username]').fill('admin');
      await form.locator('input[name=password]').fill(wrong);
      await Promise.all([page.waitForNavigation(), submitOf(form).click()]);
      assert.ok(await page.locator('.flash.error').isVisible(), '.flash.error after a wrong password');
      assert.notEqual(new URL(page.url()).pathname, '/repository/', 'not signed in');
      assert.ok(!(await page.content()).includes(wrong), 'the page echoes the wrong password');
      assert.equal(await page.locator('.whoami').count(), 0, 'no .whoami');
    });
  });

  test('admin signs in: header, HttpOnly SameSite session cookie; signing out ends the session', T, async () => {
    await withPage(browser, async (page, context) => {
      await signIn(page, 'admin', ADMIN_PASS);
      assert.match(await text(page.locator('.whoami')), /\badmin\b/i);
      const signout = page.locator('form[action="/signout"]');
      assert.equal(await signout.count(), 1, 'form[action="/signout"]');
      assert.match(await text(submitOf(signout)) || await submitOf(signout).getAttribute('value'), /^sign out$/i);

      const cookie = (await context.cookies()).find((c) => c.name === 'berth_session');
      assert.ok(cookie, 'a berth_session cookie');
      assert.equal(cookie.httpOnly, true, 'berth_session is HttpOnly');
      assert.ok(['Lax', 'Strict'].includes(cookie.sameSite), `berth_session SameSite is ${cookie.sameSite}`);
      assert.ok(!(await page.evaluate(() => document.cookie)).includes('berth_session'), 'visible to scripts');

      await Promise.all([page.waitForNavigation(), submitOf(signout).click()]);
      assert.equal(await page.locator('.whoami').count(), 0, 'no .whoami after signing out');
      await goto(page, '/repository/');
      assert.ok(await page.locator('a[href^="/signin"]').first().isVisible(), 'a sign-in link after signing out');
      assert.equal(await repoRow(page, 'userorg/httpd-24').count(), 0, 'private repository still listed');

      // The old cookie must be dead on the server, not only removed from the browser.
      await context.addCookies([cookie]);
      await goto(page, '/repository/');
      assert.equal(await page.locator('.whoami').count(), 0, 'the signed-out session cookie still works');
      assert.equal(await repoRow(page, 'userorg/httpd-24').count(), 0, 'the signed-out session cookie still works');
    });
  });

  test('an anonymous header links to the sign-in page', T, async () => {
    await withPage(browser, async (page) => {
      await goto(page, '/repository/');
      assert.ok(await page.locator('a[href^="/signin"]').first().isVisible(), 'a[href^="/signin"]');
      assert.equal(await page.locator('.whoami').count(), 0, 'no .whoami');
      assert.equal(await page.locator('form[action="/signout"]').count(), 0, 'no sign-out form');
    });
  });
});

describe('repositories list', () => {
  test('admin sees namespaces and repositories with visibility, tag count and last push', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      const ns = page.locator('section.namespace[data-namespace="userorg"]');
      assert.equal(await ns.count(), 1, 'section.namespace[data-namespace="userorg"]');
      for (const repo of ['userorg/httpd-24', 'userorg/helm/quarkus', 'userorg/hostile']) {
        const row = ns.locator(`tr.repo-row[data-repo="${repo}"]`);
        assert.equal(await row.count(), 1, `a row for ${repo} in the userorg section`);
        assert.match(await text(row.locator('.last-pushed')), /\S/, `${repo}: .last-pushed`);
        assert.match(await text(row.locator('.tag-count')), /\d/, `${repo}: .tag-count`);
      }
      const vis = async (repo) => (await text(repoRow(page, repo).locator('.visibility'))).toLowerCase();
      assert.equal(await vis('userorg/httpd-24'), 'private');
      assert.equal(await vis('userorg/helm/quarkus'), 'private');
      assert.equal(await vis('userorg/hostile'), 'public');
      assert.match(await text(repoRow(page, 'userorg/helm/quarkus').locator('.tag-count')), /^1\b/);
      const hostileTags = (await tagsOf('userorg/hostile')).length;
      assert.match(await text(repoRow(page, 'userorg/hostile').locator('.tag-count')), new RegExp(`^${hostileTags}\\b`));
      await shot(page, 'repositories.png');
    });
  });

  test('the filter (a GET form) narrows the list', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      const form = page.locator('form.repo-filter');
      assert.equal((await form.getAttribute('method') || 'get').toLowerCase(), 'get', 'form.repo-filter uses GET');
      await form.locator('input[name=filter]').fill('httpd');
      await Promise.all([page.waitForNavigation(), form.locator('input[name=filter]').press('Enter')]);
      assert.equal(new URL(page.url()).searchParams.get('filter'), 'httpd');
      assert.deepEqual(await repoNames(page), ['userorg/httpd-24']);
      assert.equal(await page.locator('form.repo-filter input[name=filter]').inputValue(), 'httpd', 'the filter stays filled in');
    });
  });
});

describe('tags', () => {
  test('httpd-24: kinds, signed badge, size, time, digest, pull command, delete link; cosign tags hidden', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      const tabs = page.locator('nav.tabs');
      assert.equal(await tabs.locator('a', { hasText: /^\s*tags\s*$/i }).count(), 1, 'a "Tags" tab');
      assert.match(await tabs.locator('a', { hasText: /^\s*settings\s*$/i }).getAttribute('href'), /[?&]tab=settings\b/);

      const row = tagRow(page, '1-30');
      assert.equal(await row.count(), 1, 'row 1-30');
      assert.equal(await text(row.locator('.tag-name')), '1-30');
      const img = await kindOf(row);
      assert.equal(img.kind, 'image');
      assert.equal(img.label, 'Container image');
      assert.equal(img.icons, 1, 'svg.icon in .kind');
      // The plain "signed" badge until berth has checked the signatures, then their status
      // (the seed's key is not trusted).
      const badge = row.locator('a.badge-signed, a.trust-badge');
      assert.match(await text(badge), /^(signed|signed, untrusted key)$/i);
      assert.match(await badge.getAttribute('href'), /\/repository\/userorg\/httpd-24\/manifest\/sha256:[0-9a-f]{64}(#signatures)?$/);
      assert.match(await text(row.locator('.size')), /\d(\.\d+)?\s*(B|bytes|KB|kB|KiB|MB|MiB)\b/);
      const when = await row.locator('.modified time[datetime]').getAttribute('datetime');
      assert.match(when, /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/, `datetime="${when}" is not a valid global date and time`);
      const age = Date.now() - Date.parse(when);
      assert.ok(age > -300_000 && age < 86_400_000, `.modified time datetime=${when} is not the push time`);
      const copy = row.locator('.digest button.copy');
      assert.equal(await copy.getAttribute('data-copy'), seed.image.digest, 'the copy button holds the full digest');
      const short = (await text(row.locator('.digest code'))).replace(/^sha256:/, '').replace(/[….]+$/, '');
      assert.ok(short.length >= 7 && hex(seed.image.digest).startsWith(short), `short digest ${short}`);
      const pull = await text(row.locator('code.pull-command'));
      assert.ok(pull.startsWith('podman pull '), pull);
      assert.ok(pull.includes(`${HOST}/userorg/httpd-24`), pull);
      assert.equal(await row.locator('a.delete-tag').count(), 1, 'a.delete-tag for an admin');

      const enc = tagRow(page, 'encrypted');
      const k = await kindOf(enc);
      assert.equal(k.kind, 'encrypted-image');
      assert.equal(k.label, 'Encrypted image');
      assert.match(k.detail, /\bJWE\b/i);
      assert.equal(await enc.locator('svg.icon-lock').count(), 1, 'svg.icon-lock in the encrypted row');
      assert.equal(await enc.locator('a.badge-signed, a.trust-badge').count(), 0, 'the encrypted image is not signed');

      const names = await tagNames(page);
      assert.ok(!names.some((n) => COSIGN_TAG.test(n)), `cosign tags shown by default: ${names}`);
      assert.equal(await page.locator('nav.pager a[rel=next]').count(), 0, 'no next page for a few tags');
      await shot(page, 'tags-httpd-24.png');
    });
  });

  test('"Show signatures" shows the cosign tags; clicking it again hides them', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      const toggle = page.locator('a.toggle-signatures');
      assert.match(await text(toggle), /show signatures/i);
      assert.match(await toggle.getAttribute('href'), /[?&]signatures=1\b/);
      await Promise.all([page.waitForNavigation(), toggle.click()]);
      assert.equal(new URL(page.url()).searchParams.get('signatures'), '1');
      const sig = tagRow(page, seed.sigTag);
      assert.equal(await sig.count(), 1, `row ${seed.sigTag}`);
      const k = await kindOf(sig);
      assert.equal(k.kind, 'signature');
      assert.equal(k.label, 'Cosign signature');
      assert.ok((await text(sig.locator('code.pull-command'))).startsWith('oras pull '));
      assert.equal(await tagRow(page, '1-30').count(), 1, 'the image stays listed');
      await shot(page, 'tags-httpd-24-signatures.png');

      await Promise.all([page.waitForNavigation(), page.locator('a.toggle-signatures').click()]);
      assert.notEqual(new URL(page.url()).searchParams.get('signatures'), '1');
      assert.equal(await tagRow(page, seed.sigTag).count(), 0, 'the signature row is hidden again');
    });
  });

  test('the signatures toggle and the sign-in form work without JavaScript', T, async () => {
    await withPage(browser, { javaScriptEnabled: false }, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      await Promise.all([page.waitForNavigation(), page.locator('a.toggle-signatures').click()]);
      assert.equal(await tagRow(page, seed.sigTag).count(), 1, `row ${seed.sigTag}`);
    });
  });

  test('Helm chart: kind, chart name and version, helm install command', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/helm/quarkus'));
      const row = tagRow(page, '0.0.3');
      const k = await kindOf(row);
      assert.equal(k.kind, 'helm-chart');
      assert.equal(k.label, 'Helm chart');
      assert.equal(k.icons, 1, 'svg.icon');
      assert.match(k.detail, /^quarkus\s+0\.0\.3$/);
      assert.equal(await text(row.locator('code.pull-command')),
        `helm install quarkus oci://${HOST}/userorg/helm/quarkus --version 0.0.3`);
      assert.equal(await row.locator('.digest button.copy').getAttribute('data-copy'), seed.chart.digest);
      await shot(page, 'tags-helm-quarkus.png');
    });
  });

  test('multi-arch index and zstd image: kinds and details', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/kinds'));
      const index = await kindOf(tagRow(page, 'multi'));
      assert.equal(index.kind, 'index');
      assert.equal(index.label, 'Multi-arch index');
      assert.match(index.detail, /linux\/amd64/);
      assert.match(index.detail, /linux\/arm64/);
      const zstd = await kindOf(tagRow(page, 'zstd'));
      assert.equal(zstd.kind, 'zstd-image');
      assert.equal(zstd.label, 'zstd image');
      assert.ok((await text(tagRow(page, 'multi').locator('code.pull-command'))).startsWith('podman pull '));
    });
  });

  test('the tag filter (a GET form) narrows the tags', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      const form = page.locator('form.tag-filter');
      assert.equal((await form.getAttribute('method') || 'get').toLowerCase(), 'get');
      await form.locator('input[name=filter]').fill('encr');
      await Promise.all([page.waitForNavigation(), form.locator('input[name=filter]').press('Enter')]);
      const url = new URL(page.url());
      assert.equal(url.searchParams.get('filter'), 'encr');
      assert.equal(url.pathname, '/repository/userorg/httpd-24');
      assert.deepEqual(await tagNames(page), ['encrypted']);
    });
  });

  test('the pager walks every tag of a repository with many, once each', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      const expected = (await tagsOf('userorg/paged')).sort();
      assert.ok(expected.length >= 100, `seeded tags: ${expected.length}`);
      await goto(page, tagsUrl('userorg/paged'));
      assert.equal(await page.locator('nav.pager a[rel=prev]').count(), 0, 'no previous page on the first');
      const seen = [];
      let pages = 0;
      for (;;) {
        pages += 1;
        assert.ok(pages <= expected.length, 'the pager does not end');
        seen.push(...await tagNames(page));
        const next = page.locator('nav.pager a[rel=next]');
        if (!(await next.count())) break;
        await Promise.all([page.waitForNavigation(), next.click()]);
        assert.equal(await page.locator('nav.pager a[rel=prev]').count(), 1, `a previous link on page ${pages + 1}`);
      }
      assert.ok(pages >= 2, `${expected.length} tags fit on one page: the pager was not exercised`);
      assert.deepEqual([...seen].sort(), expected, 'every tag once across the pages');
    });
  });

  test('phone viewport (390x844): the tags page renders', T, async () => {
    await withPage(browser, { viewport: PHONE }, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      assert.equal(await tagRow(page, '1-30').count(), 1);
      assert.ok(await page.locator('.whoami').isVisible(), '.whoami visible on a phone');
      await shot(page, 'tags-httpd-24-phone.png');
    });
  });

  test('public userorg/hostile (anonymous): chart, artifact, odd tag name; no delete links', T, async () => {
    await withPage(browser, async (page) => {
      await goto(page, tagsUrl('userorg/hostile'));
      const chart = await kindOf(tagRow(page, '1.0.0'));
      assert.equal(chart.kind, 'helm-chart');
      assert.match(chart.detail, /^evil\s+1\.0\.0$/);
      const note = tagRow(page, 'note');
      const k = await kindOf(note);
      assert.equal(k.kind, 'artifact');
      assert.equal(k.label, 'OCI artifact');
      assert.ok(k.detail.includes('application/vnd.berth.e2e.note.v1+json'), k.detail);
      assert.ok((await text(note.locator('code.pull-command'))).startsWith('oras pull '));
      const odd = tagRow(page, ODD_TAG);
      assert.equal(await odd.count(), 1, `row for the tag ${ODD_TAG}`);
      assert.equal(await text(odd.locator('.tag-name')), ODD_TAG);
      assert.ok((await text(odd.locator('code.pull-command'))).endsWith(`userorg/hostile:${ODD_TAG}`));
      assert.equal(await page.locator('a.delete-tag').count(), 0, 'no delete links for anonymous');
      assert.equal(await page.locator('nav.tabs a', { hasText: /settings/i }).count(), 0, 'no Settings tab for anonymous');
    });
  });
});

describe('manifest page', () => {
  test('image 1-30: facts, layers, the cosign referrer, the raw manifest as stored', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, manifestUrl('userorg/httpd-24', seed.image.digest));
      assert.ok((await text(page.locator('dl.manifest-facts'))).includes('application/vnd.oci.image.manifest.v1+json'));
      const layers = page.locator('table.layers tr.layer');
      assert.equal(await layers.count(), seed.image.json.layers.length);
      const layer = seed.image.json.layers[0];
      const lt = await text(layers.first());
      assert.ok(lt.includes(layer.mediaType), lt);
      assert.ok(lt.includes(hex(layer.digest).slice(0, 12)) || (await layers.first().innerHTML()).includes(layer.digest), 'layer digest');
      const refs = page.locator('section.referrers tr.referrer');
      assert.ok(seed.referrers.length >= 1, 'the registry lists the referrer signature');
      // At least the referrers API's answer (a page may add the sha256-<hex>.sig tag signature).
      assert.ok(await refs.count() >= seed.referrers.length, 'tr.referrer rows');
      const html = await page.locator('section.referrers').innerHTML();
      for (const r of seed.referrers) assert.ok(html.includes(hex(r.digest).slice(0, 12)), `referrer ${r.digest} listed`);
      assert.match(await text(refs.first()), /cosign|signature|application\/vnd\.dev\.cosign\.artifact\.sig\.v1\+json/i);
      const raw = await page.locator('pre.raw-manifest').textContent();
      assert.equal(raw, seed.image.body, 'pre.raw-manifest is the stored manifest, byte for byte');
      assert.ok((await page.locator('a.raw-download').getAttribute('href')).endsWith(`/manifest/${seed.image.digest}/raw`));
      await shot(page, 'manifest-httpd-24.png');
    });
  });

  test('the signed badge leads to a manifest page', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      await Promise.all([page.waitForNavigation(), tagRow(page, '1-30').locator('a.badge-signed, a.trust-badge').click()]);
      assert.match(new URL(page.url()).pathname, /^\/repository\/userorg\/httpd-24\/manifest\/sha256:[0-9a-f]{64}$/);
      assert.equal(await page.locator('dl.manifest-facts').count(), 1);
    });
  });

  test('encrypted image: +encrypted layers with the JWE key annotation listed', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, manifestUrl('userorg/httpd-24', seed.encrypted.digest));
      const layers = page.locator('table.layers tr.layer');
      assert.ok(await layers.count() >= 1);
      const lt = await text(layers.first());
      assert.ok(lt.includes('application/vnd.oci.image.layer.v1.tar+gzip+encrypted'), lt);
      assert.ok(lt.includes('org.opencontainers.image.enc.keys.jwe'), 'annotation key org.opencontainers.image.enc.keys.jwe');
    });
  });

  test('Helm chart: the chart section shows Chart.yaml fields', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, manifestUrl('userorg/helm/quarkus', seed.chart.digest));
      const chart = page.locator('section.chart');
      const field = (f) => text(chart.locator(`dd[data-field="${f}"]`));
      assert.equal(await field('name'), 'quarkus');
      assert.equal(await field('version'), '0.0.3');
      assert.equal(await field('appVersion'), '1.0.0');
      assert.match(await field('description'), /quarkus demo chart/i);
      assert.ok((await text(page.locator('dl.manifest-facts'))).includes('application/vnd.cncf.helm.config.v1+json'));
    });
  });
});

describe('settings and organization', () => {
  test('settings tab (admin): visibility, permissions, delete repository', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      await Promise.all([page.waitForNavigation(), page.locator('nav.tabs a', { hasText: /^\s*settings\s*$/i }).click()]);
      assert.equal(new URL(page.url()).searchParams.get('tab'), 'settings');
      assert.equal(await page.locator('form.visibility').count(), 1, 'form.visibility');
      const perms = page.locator('table.permissions');
      assert.equal(await perms.count(), 1, 'table.permissions');
      assert.match(await text(perms), /\breader\b/, 'the read grant of user reader is listed');
      assert.equal(await page.locator('form.delete-repository').count(), 1, 'form.delete-repository');
      await shot(page, 'settings-httpd-24.png');
    });
  });

  test('a reader sees the tags but no delete links and no settings', T, async (t) => {
    if (!READER_PASS) return t.skip('READER_PASS not set');
    await withPage(browser, { allowConsole: [/status of 40[34]/] }, async (page) => {
      await signIn(page, 'reader', READER_PASS);
      await goto(page, tagsUrl('userorg/httpd-24'));
      assert.equal(await tagRow(page, '1-30').count(), 1, 'row 1-30');
      assert.equal(await page.locator('a.delete-tag').count(), 0, 'no a.delete-tag for read permission');
      assert.equal(await page.locator('nav.tabs a', { hasText: /settings/i }).count(), 0, 'no Settings tab');
      await page.goto(tagsUrl('userorg/httpd-24').replace('tab=tags', 'tab=settings'));
      assert.equal(await page.locator('form.delete-repository').count(), 0, 'settings of a read-only repository');
      assert.equal(await page.locator('form.visibility').count(), 0, 'settings of a read-only repository');
    });
  });

  test('organization page: members, teams, robots (token shown once), repositories', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      await goto(page, '/organization/userorg');
      for (const s of ['members', 'teams', 'robots', 'repositories']) {
        assert.equal(await page.locator(`section.${s}`).count(), 1, `section.${s}`);
      }
      assert.ok((await text(page.locator('section.repositories'))).includes('httpd-24'));
      const name = `e2e${Date.now().toString(36)}`;
      const form = page.locator('section.robots form.create-robot');
      await form.locator('input[name=name]').fill(name);
      await Promise.all([page.waitForNavigation(), submitOf(form).click()]);
      const token = (await text(page.locator('.robot-token'))).trim();
      assert.ok(token.length >= 16, `robot token shown: "${token}"`);
      const r = await fetch(`${BASE}/v2/`, { headers: { Authorization: basic(`userorg+${name}`, token) } });
      assert.equal(r.status, 200, 'the shown token logs the robot in on /v2/');

      await goto(page, '/organization/userorg');
      assert.equal(await page.locator('.robot-token').count(), 0, 'the token is shown again');
      assert.ok(!(await page.content()).includes(token), 'the token is in the page again');
      assert.ok((await text(page.locator('section.robots'))).includes(`userorg+${name}`), 'the new robot is listed');
      await shot(page, 'organization-userorg.png');
    });
  });
});

describe('privacy', () => {
  for (const who of ['viewer', 'anonymous']) {
    test(`${who}: private repositories are neither listed nor reachable; the public one is listed`, T, async () => {
      await withPage(browser, { allowConsole: NOT_FOUND }, async (page) => {
        if (who === 'viewer') await signIn(page, 'viewer', VIEWER_PASS);
        for (const path of ['/repository/', '/repository/?filter=httpd', '/repository/?filter=quarkus']) {
          await goto(page, path);
          const names = await repoNames(page);
          for (const hidden of ['userorg/httpd-24', 'userorg/helm/quarkus', 'userorg/paged', 'userorg/kinds']) {
            assert.ok(!names.includes(hidden), `${path} lists ${hidden}`);
          }
          assert.ok(!(await page.content()).includes('httpd-24'), `${path} mentions httpd-24`);
        }
        await goto(page, '/repository/');
        assert.equal(await repoRow(page, 'userorg/hostile').count(), 1, 'the public userorg/hostile is listed');
        for (const path of [
          tagsUrl('userorg/httpd-24'),
          tagsUrl('userorg/httpd-24', '&signatures=1'),
          tagsUrl('userorg/helm/quarkus'),
          manifestUrl('userorg/httpd-24', seed.image.digest),
          manifestUrl('userorg/helm/quarkus', seed.chart.digest),
        ]) {
          await goto(page, path, 404);
          await assertNoPrivateContent(page, path);
        }
      });
    });
  }
});

describe('escaping', () => {
  test('hostile tags page: markup shows as text and does not run', T, async () => {
    await withPage(browser, async (page) => {
      await goto(page, tagsUrl('userorg/hostile'));
      assert.ok((await page.locator('body').innerText()).includes(SCRIPT), `the text ${SCRIPT} is visible`);
      await assertInert(page);
    });
  });

  test('hostile manifest page: annotations (values and keys) show as text and do not run', T, async () => {
    await withPage(browser, async (page) => {
      await goto(page, manifestUrl('userorg/hostile', seed.hostile.digest));
      const body = await page.locator('body').innerText();
      assert.ok(body.includes(SCRIPT), `the text ${SCRIPT} is visible`);
      assert.ok((await text(page.locator('table.layers tr.layer').first())).includes(SCRIPT), 'the layer annotation shows as text');
      assert.ok((await page.locator('pre.raw-manifest').textContent()).includes(SCRIPT), 'the raw manifest holds the text');
      await assertInert(page);
    });
  });

  test('hostile chart: the description shows as text and does not run', T, async () => {
    await withPage(browser, async (page) => {
      await goto(page, manifestUrl('userorg/hostile', seed.hostileChart.digest));
      const desc = await text(page.locator('section.chart dd[data-field="description"]'));
      assert.equal(desc, SCRIPT + IMG);
      assert.equal(await text(page.locator('section.chart dd[data-field="name"]')), 'evil');
      await assertInert(page);
    });
  });
});

// Last: it changes the seed (removes the tag made for it).
describe('delete a tag', () => {
  test('confirm, then the row is gone and only that tag was deleted', T, async () => {
    await withPage(browser, async (page) => {
      await signIn(page, 'admin', ADMIN_PASS);
      assert.ok((await tagsOf('userorg/httpd-24')).includes('to-delete'), 'the seed has the tag to-delete');
      await goto(page, tagsUrl('userorg/httpd-24'));
      await Promise.all([page.waitForNavigation(), tagRow(page, 'to-delete').locator('a.delete-tag').click()]);
      const confirm = page.locator('form.confirm-delete');
      assert.equal(await confirm.count(), 1, 'form.confirm-delete');
      assert.ok((await text(page.locator('body'))).includes('to-delete'), 'the confirmation names the tag');
      assert.ok((await tagsOf('userorg/httpd-24')).includes('to-delete'), 'following the link alone deleted the tag');

      await Promise.all([page.waitForNavigation(), submitOf(confirm).click()]);
      assert.equal(new URL(page.url()).pathname, '/repository/userorg/httpd-24');
      assert.ok(await page.locator('.flash.success').isVisible(), '.flash.success');
      assert.equal(await tagRow(page, 'to-delete').count(), 0, 'the row is gone');
      assert.equal(await tagRow(page, '1-30').count(), 1, 'row 1-30 stays');
      const left = await tagsOf('userorg/httpd-24');
      assert.ok(!left.includes('to-delete'), 'the registry still has the tag');
      for (const t of ['1-30', 'encrypted', seed.sigTag]) assert.ok(left.includes(t), `tag ${t} was deleted too`);
    });
  });
});
