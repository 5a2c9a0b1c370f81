// Opens the service catalogue in headless Chromium (Debian's, driven by npm's
// playwright-core) and prints what a reader sees, as JSON: the services shown, the
// environments, the graph's edges, console errors, and whether a phone-width window needs
// to scroll sideways. Usage: node catalog.mjs PAGE SCREENSHOT
import { chromium } from 'playwright-core';

const [page_path, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  const requests = [];
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(`file://${page_path}`);
  const seen = await page.evaluate(() => ({
    services: [...document.querySelectorAll('section[data-service]')].map((s) => s.dataset.service),
    environments: [...document.querySelectorAll('th[data-environment]')].map((t) => t.dataset.environment),
    edges: [...document.querySelectorAll('svg line.edge')].map((e) => `${e.dataset.from}->${e.dataset.to}`),
    nodes: [...document.querySelectorAll('svg g.node')].map((n) => n.dataset.node),
    versions: [...document.querySelectorAll('tr[data-row] td')].map((td) => td.innerText.split('\n')[0]),
    sideways: document.documentElement.scrollWidth > window.innerWidth,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  const elsewhere = requests.filter((url) => !url.startsWith('file://'));
  console.log(JSON.stringify({ ...seen, errors, elsewhere }));
} finally {
  await browser.close();
}
