// Click through a facevox Snakemake report in headless Chromium, as a reader would:
// study -> per-video table -> one video's timeline -> one model's predictions (and the
// caption link back to the per-video table) -> run card. Fails (exit 1) when a page or
// section is missing or empty. Driven by tests/test_report_browser.py.
//
//   node clickthrough.mjs <report.html> <screenshot dir> <video ids, comma-separated> <timeline video> <model>
//
// Chromium: Debian's /usr/bin/chromium (CHROMIUM overrides), playwright-core from npm (package.json).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [report, shots, videoList, timelineVideo, model] = process.argv.slice(2);
if (!model) {
  console.error('usage: node clickthrough.mjs <report.html> <screenshot dir> <videos> <timeline video> <model>');
  process.exit(2);
}
const videos = videoList.split(',').filter(Boolean);
const profile = mkdtempSync(join(tmpdir(), 'facevox-chromium-'));
const problems = [];
const seen = {};
const check = (ok, what) => { if (!ok) problems.push(what); };

// a persistent context is how playwright passes --user-data-dir=<profile> to Chromium
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1500, height: 950 },
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto('file://' + report);
  await page.getByRole('link', { name: '1. Study' }).waitFor();

  // Open a category, optionally a subcategory, then the "view" button of the row whose text matches.
  const menu = page.locator('nav').first();
  async function open(category, subcategory, rowText) {
    const crumbs = menu.locator('nav li a');  // breadcrumbs: the first one leads back to the results menu
    if (await crumbs.count()) await crumbs.first().click();
    await menu.getByRole('link', { name: category, exact: true }).first().click();
    if (subcategory) await menu.getByText(subcategory, { exact: true }).first().click();
    const row = menu.locator('tr', { hasText: rowText }).first();
    await row.waitFor();
    await row.locator('td').last().locator('a').first().click();
  }
  const frame = () => page.frameLocator('iframe');

  // 1. study page: every section has content
  await open('1. Study', null, 'study.html');
  await frame().locator('main#study').waitFor();
  for (const id of ['sheet', 'splits', 'settings', 'excluded']) {
    const text = (await frame().locator(`section#${id}`).innerText()).trim();
    seen[`study.${id}`] = text.length;
    check(text.split('\n').length > 1, `study page: section ${id} is empty`);
  }
  seen['study.split_rows'] = await frame().locator('#split-table tbody tr').count();
  check(seen['study.split_rows'] >= 2, 'study page: split table has no split row');
  await page.screenshot({ path: join(shots, '1_study.png') });

  // 2. per-video table: one row per sheet video; sorting and the search box work
  await open('2. Videos', null, 'videos.html');
  await frame().locator('#videos-table').waitFor();
  const rows = await frame().locator('#videos-table tbody tr').allInnerTexts();
  seen['videos.rows'] = rows.length;
  check(rows.length === videos.length, `per-video table: ${rows.length} rows, sheet has ${videos.length}`);
  for (const v of videos) check(rows.some((r) => r.split('\t')[0].trim() === v), `per-video table: video ${v} missing`);
  await frame().locator('#videos-table th', { hasText: 'face found' }).click();
  await frame().locator('input.filter').fill(videos[0]);
  seen['videos.filtered'] = await frame().locator('#videos-table tbody tr:visible').count();
  check(seen['videos.filtered'] >= 1, 'per-video table: the search box hides every row');
  await frame().locator('input.filter').fill('');
  await page.screenshot({ path: join(shots, '2_videos.png') });

  // 3. one video's timeline and landmark sheet (a toggle over the video's row): images that decoded
  await open('3. Timelines', null, timelineVideo);
  const img = page.locator('img[src^="data:image/png"]').last();
  const sources = [];
  for (const figure of ['timeline', 'landmarks']) {
    await menu.locator('fieldset label', { hasText: figure }).click();
    await menu.locator('tr', { hasText: timelineVideo }).first().locator('td').last().locator('a').first().click();
    await img.waitFor();
    await page.waitForFunction((el) => el.complete, await img.elementHandle());
    const width = await img.evaluate((el) => el.naturalWidth);
    sources.push(await img.getAttribute('src'));
    seen[`timeline.${figure}_width`] = width;
    check(width > 200, `timeline ${timelineVideo}: ${figure} image did not load (width ${width})`);
    await page.screenshot({ path: join(shots, `3_${figure}.png`) });
  }
  check(sources[0] !== sources[1], `timeline ${timelineVideo}: the toggle did not switch the figure`);

  // 4. one model: its prediction table, then the caption's link back to the per-video table
  await open('5. Models', model, 'predictions');
  await frame().locator('#predictions-table').waitFor();
  seen['model.rows'] = await frame().locator('#predictions-table tbody tr').count();
  check(seen['model.rows'] > 0, `model ${model}: prediction table is empty`);
  await page.screenshot({ path: join(shots, '4_model.png') });
  const info = menu.locator('tr', { hasText: 'predictions' }).first().locator('td').last().locator('a').nth(1);
  await info.click();
  const link = menu.locator('a', { hasText: 'videos.html' }).first();
  await link.waitFor();
  await link.click();  // the caption's link: the result panel of the per-video table
  const path = menu.locator('ul').getByText('results/report/videos.html', { exact: true }).first();
  await path.waitFor();
  await path.locator('xpath=..').locator('a').first().click();  // its view button
  await frame().locator('#videos-table').waitFor();
  seen['model.link_to_videos'] = await frame().locator('#videos-table tbody tr').count();
  check(seen['model.link_to_videos'] === videos.length, `model ${model}: the link back did not open the per-video table`);
  await page.screenshot({ path: join(shots, '4_model_link.png') });

  // 5. the run card page: stage table with bars
  await open('7. Run', null, 'run_card.html');
  await frame().locator('#stages-table').waitFor();
  seen['run_card.stages'] = await frame().locator('#stages-table tbody tr').count();
  check(seen['run_card.stages'] > 0, 'run card page: no stage row');
  seen['run_card.bars'] = await frame().locator('#stages-table .bar').count();
  check(seen['run_card.bars'] === seen['run_card.stages'], 'run card page: a stage has no bar');
  await page.screenshot({ path: join(shots, '5_run_card.png'), fullPage: false });
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ seen, problems }));
process.exit(problems.length ? 1 : 0);
