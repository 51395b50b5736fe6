#!/usr/bin/env python3
"""Check the built docs site (`_site/`, from scripts/build_docs.py) in headless Chromium.

The site is served on 127.0.0.1 by Python's http.server (in a thread) and Debian's Chromium (`/usr/bin/chromium`) is
driven through Playwright (never `playwright install`: the browser is the system's). Starting from index.html it
loads every page, the crawled ones and every *.html in the folder, and fails on:

- a page that does not answer HTTP 200, throws a JavaScript error, logs a console error or has a request that fails;
- a page that has no <h1> title, or that cannot be reached from index.html by following links;
- an internal <a href> whose target does not load, or whose #anchor names no element id on the target page;
- an <img> that is not complete or has naturalWidth 0 (a missing or broken image).

External links are counted, not followed (no network is assumed). Screenshots of a few pages (viewport 1200x900)
and a report (site_check.txt) go to the artefacts folder. Exit status 1 with the list of failures, 0 when clean.

Usage: python scripts/check_site.py [--site _site] [--out ci-artifacts] [--shots index.html augmix_mixup.html]
"""
import argparse, functools, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse, unquote
from urllib.request import urlopen

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    "Serve `site` on a free localhost port from a daemon thread; return the server and its base URL."
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"

# Everything the checks need from a loaded page, in one round trip.
_SCAN = """() => ({
  title: (document.querySelector('main h1, h1') || {}).textContent || '',
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.getAttribute('name')),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => ({raw: a.getAttribute('href'), abs: a.href})),
  imgs: Array.from(document.images).map(i => ({src: (i.getAttribute('src') || '').slice(0, 80), complete: i.complete,
                                               width: i.naturalWidth}))
})"""

def check(site: Path, out: Path, shots: list[str], chromium: str, timeout_s: float) -> int:
    from playwright.sync_api import sync_playwright
    site, t0 = site.resolve(), time.time()
    if not (site/'index.html').is_file(): sys.exit(f"site check: {site}/index.html not found (run scripts/build_docs.py first)")
    if not Path(chromium).exists(): sys.exit(f"site check: no Chromium at {chromium} (Debian: apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    httpd, base = serve(site)
    failures, pages, files, external, n_links, n_anchors, n_imgs = [], {}, set(), set(), 0, 0, 0
    fail = lambda page, msg: failures.append(f"{page}: {msg}")
    referrer = {}                                                             # page -> the first page that links to it
    name = lambda url: urlparse(url).path.lstrip('/') or 'index.html'
    via = lambda url: name(url) + (f" (linked from {referrer[url]})" if referrer.get(url) else '')
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=timeout_s * 1000)
            ctx = browser.new_context(viewport={'width': 1200, 'height': 900})
            page = ctx.new_page()
            page.set_default_timeout(timeout_s * 1000)
            events = []
            page.on('pageerror', lambda e: events.append(f"JavaScript error: {e}"))
            page.on('console', lambda m: events.append(f"console {m.type}: {m.text}") if m.type == 'error' else None)
            page.on('requestfailed', lambda r: events.append(f"request failed: {r.url[:120]} ({r.failure})"))
            page.on('response', lambda r: events.append(f"HTTP {r.status}: {r.url[:120]}")
                    if r.status >= 400 and r.request.resource_type != 'document' else None)

            def load(url: str) -> dict:
                "Load `url` (no fragment) once; the page's scan, or None when it did not load or is not a page."
                if url in pages: return pages[url]
                if not urlparse(url).path.endswith(('.html', '/')):              # a file: it must exist, it is not opened
                    try:
                        with urlopen(url, timeout=timeout_s) as r: ok = r.status == 200
                    except OSError as e: ok = False; fail(via(url), f"file does not load: {e}")
                    pages[url] = None
                    if ok: files.add(url)
                    return None
                events.clear()
                try: resp = page.goto(url, wait_until='load')
                except Exception as e:                                       # noqa: BLE001 (any navigation error is a failure)
                    fail(via(url), f"does not load: {str(e).splitlines()[0]}"); pages[url] = None; return None
                status = resp.status if resp else None
                if status != 200: fail(via(url), f"HTTP {status}")
                is_html = 'html' in ((resp.headers.get('content-type') or '') if resp else '')
                scan = page.evaluate(_SCAN) if is_html and status == 200 else None
                for e in events: fail(name(url), e)
                if scan is not None and not scan['title'].strip(): fail(name(url), "no <h1> title")
                pages[url] = scan
                return scan

            # crawl from the index, then every page file the crawl did not reach
            todo, reached = [base + 'index.html'], set()
            referrer[base + 'index.html'] = None
            while todo:
                url = todo.pop(0)
                if url in reached: continue
                reached.add(url)
                scan = load(url)
                if not scan: continue
                for l in scan['links']:
                    target, frag = urldefrag(l['abs'])
                    if not target.startswith(base):
                        if urlparse(l['abs']).scheme in ('http', 'https'): external.add(l['abs'])
                        continue
                    n_links += 1
                    referrer.setdefault(target, name(url))
                    if target not in reached and target not in todo: todo.append(target)
                for i in scan['imgs']:
                    n_imgs += 1
                    if not i['complete'] or not i['width']: fail(name(url), f"image not shown: {i['src']!r}")
            for f in sorted(site.glob('*.html')):
                url = base + f.name
                if url not in reached:
                    fail(f.name, "not reachable from index.html by links"); load(url)

            # anchors: every internal link's #fragment must be an element id on its target page
            for url, scan in list(pages.items()):
                for l in (scan or {}).get('links', []):
                    target, frag = urldefrag(l['abs'])
                    if not target.startswith(base) or not frag: continue
                    n_anchors += 1
                    tscan = pages.get(target)
                    if tscan is None: continue                # not a page, or its own failure is already listed
                    if unquote(frag) not in tscan['ids'] and frag not in tscan['ids']:
                        fail(name(url), f"link {l['raw']!r}: no element with id {unquote(frag)!r} on {name(target)}")

            # screenshots
            shot_files = []
            for s in shots:
                if not (site/s).is_file(): fail(s, "screenshot page missing"); continue
                page.goto(base + s, wait_until='load')
                dest = out/(Path(s).stem + '.png')
                page.screenshot(path=str(dest))
                shot_files.append(dest)
            browser.close()
    finally:
        httpd.shutdown()

    html_pages = [u for u, s in pages.items() if s is not None]
    summary = (f"site check ({chromium}, {time.time() - t0:.1f} s): {len(html_pages)} pages loaded, "
               f"{n_links} internal links to {len(pages)} distinct targets, {n_anchors} anchors checked, {n_imgs} images, "
               f"{len(external)} external links not followed; screenshots: {', '.join(str(p) for p in shot_files) or 'none'}")
    lines = [summary] + ([f"{len(failures)} failure(s):"] + [f"  {f}" for f in failures] if failures else ["no failures"])
    (out/'site_check.txt').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 1 if failures else 0

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--site', type=Path, default=Path('_site'), help="the built site (default _site)")
    ap.add_argument('--out', type=Path, default=Path('ci-artifacts'), help="screenshots and report (default ci-artifacts)")
    ap.add_argument('--shots', nargs='*', default=['index.html', 'augmix_mixup.html'], help="pages to screenshot")
    ap.add_argument('--chromium', default='/usr/bin/chromium', help="the Chromium binary (default Debian's)")
    ap.add_argument('--timeout', type=float, default=60, help="seconds for the browser to start and for each page")
    a = ap.parse_args()
    sys.exit(check(a.site, a.out, a.shots, a.chromium, a.timeout))
