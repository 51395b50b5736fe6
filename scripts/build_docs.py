#!/usr/bin/env python3
"""Build the docs site and README.md without Quarto.

nbdev processes the notebooks exactly as for `nbdev_docs` (hidden cells dropped, `show_doc` rendered, front matter
extracted) into `_proc/`; nbconvert then renders each processed notebook to HTML inside a small page shell with a
navigation bar, into `_site/`. README.md is rendered from `nbs/index.ipynb` the same way, as Markdown.
With `--check`, every page must exist and every internal link and image must resolve.

Usage: python scripts/build_docs.py [--out _site] [--no-readme] [--check]
"""
import argparse, re, shutil, sys
from html.parser import HTMLParser
from pathlib import Path
import nbformat, yaml
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from nbdev.config import get_config
from nbdev.serve import proc_nbs

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;display:flex;color:#222;line-height:1.5}
nav{width:14rem;flex:none;background:#f5f6f8;border-right:1px solid #ddd;padding:1rem;min-height:100vh;font-size:.95rem}
nav a{display:block;color:#2a5db0;text-decoration:none;padding:.15rem 0} nav a.here{font-weight:700;color:#111}
nav .brand{font-weight:700;font-size:1.1rem;margin-bottom:.6rem}
main{max-width:60rem;padding:1rem 2rem;min-width:0} h1{margin-bottom:.2rem} .desc{color:#555;font-size:1.1rem;margin-top:0}
pre{background:#f7f7f9;padding:.6rem;overflow-x:auto;border-radius:4px;font-size:.85rem} code{font-size:.9em}
.jp-OutputArea-output pre{background:#fff;border-left:3px solid #ddd} img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem} th,td{border:1px solid #ddd;padding:.2rem .5rem} .jp-InputPrompt,.jp-OutputPrompt{display:none}
"""

def front_matter(nb) -> dict:
    "The YAML front matter nbdev put in the first raw cell (title, description, output-file)."
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            return yaml.safe_load(c.source.strip().strip('-')) or {}
    return {}

def prepare(nb):
    "Drop raw cells; hide the source of `echo: false` cells; strip `#|` directives from shown code."
    cells = []
    for c in nb.cells:
        if c.cell_type == 'raw': continue
        if c.cell_type == 'code':
            lines = c.source.splitlines()
            directives = {l[3:].split(':')[0].strip(): l.split(':', 1)[-1].strip() for l in lines if l.startswith('#|')}
            c.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            tags = set(c.metadata.get('tags', []))
            if directives.get('echo') == 'false' or not c.source: tags.add('remove_input')
            c.metadata['tags'] = sorted(tags)
        cells.append(c)
    nb.cells = cells
    return nb

def fix_links(text: str, pages: dict) -> str:
    "Point links at notebooks (`00_core.ipynb`, `00_core.ipynb#x`) to their rendered pages."
    return re.sub(r'([\w./-]+)\.ipynb(#[\w-]*)?', lambda m: pages.get(Path(m[1]).name, m[1] + '.html') + (m[2] or ''), text)

def shell(title, desc, body, nav, here) -> str:
    links = '\n'.join(f'<a href="{href}"{" class=here" if href == here else ""}>{t}</a>' for t, href in nav)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f'<title>{title} - diversification</title><style>{CSS}</style></head><body><nav><div class="brand">diversification</div>{links}</nav>'
            f'<main><h1>{title}</h1><p class="desc">{desc}</p>{body}</main></body></html>')

class _Refs(HTMLParser):
    def __init__(self): super().__init__(); self.refs = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'a' and a.get('href'): self.refs.append(a['href'])
        if tag == 'img' and a.get('src'): self.refs.append(a['src'])

def check_site(out: Path, pages: dict) -> int:
    "Every notebook has a page; every relative link/image resolves. Returns the number of references checked."
    missing = [p for p in pages.values() if not (out/p).exists()]
    if missing: sys.exit(f"docs check: pages missing: {missing}")
    bad, n = [], 0
    for page in out.glob('*.html'):
        parser = _Refs(); parser.feed(page.read_text())
        for ref in parser.refs:
            if re.match(r'^(https?:|mailto:|data:|#)', ref): continue
            n += 1
            if not (out/ref.split('#')[0]).exists(): bad.append(f"{page.name} -> {ref}")
    if bad: sys.exit("docs check: broken links:\n  " + '\n  '.join(bad))
    if not list(out.glob('*.html')): sys.exit("docs check: no pages")
    return n

def build(out: Path, readme: bool = True, check: bool = False):
    cfg = get_config()
    cache = proc_nbs(cfg.nbs_path, n_workers=0, force=True)   # no stale pages of renamed notebooks
    nbs = sorted(p for p in cache.glob('*.ipynb'))
    metas = {p: front_matter(nbformat.read(p, 4)) for p in nbs}
    pages = {p.stem: ('index.html' if p.stem == Path(cfg.readme_nb).stem else m.get('output-file', p.stem + '.html')) for p, m in metas.items()}
    order = sorted(nbs, key=lambda p: (pages[p.stem] != 'index.html', p.name))
    nav = [(metas[p].get('title', p.stem) if pages[p.stem] != 'index.html' else 'Home', pages[p.stem]) for p in order]
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    exp = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    exp.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    for p in order:
        nb, m = prepare(nbformat.read(p, 4)), metas[p]
        body, _ = exp.from_notebook_node(nb)
        (out/pages[p.stem]).write_text(shell(m.get('title', p.stem), m.get('description', ''), fix_links(body, pages), nav, pages[p.stem]))
    print(f"docs: {len(order)} pages written to {out}/")
    if readme: write_readme(cache/cfg.readme_nb, cfg.config_path, pages)
    if check: print(f"docs check: {len(order)} pages, {check_site(out, pages)} internal links and images resolve")

def write_readme(nb_path: Path, root: Path, pages: dict, nb_path_rel: str = 'nbs'):
    "README.md (and its figures in index_files/) from the processed index notebook."
    m, nb = front_matter(nbformat.read(nb_path, 4)), prepare(nbformat.read(nb_path, 4))
    exp = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True)
    exp.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    body, res = exp.from_notebook_node(nb, resources={'output_files_dir': 'index_files'})
    files = root/'index_files'
    if files.exists(): shutil.rmtree(files)
    for name, data in res.get('outputs', {}).items():
        (root/name).parent.mkdir(parents=True, exist_ok=True); (root/name).write_bytes(data)
    body = re.sub(r'\n{3,}', '\n\n', body).strip()
    body = re.sub(r'\]\((\w[\w-]*\.ipynb)', lambda mt: f"]({nb_path_rel}/{mt[1]}", body)   # README lives at the root
    head = f"# {m.get('title', 'diversification')}\n\n<!-- WARNING: generated from nbs/index.ipynb by scripts/build_docs.py; edit the notebook -->\n\n> {m.get('description', '')}\n\n"
    (root/'README.md').write_text(head + body.replace('<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->', '').strip() + '\n')
    print("README.md written from", nb_path.name)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=Path('_site'))
    ap.add_argument('--no-readme', action='store_true')
    ap.add_argument('--check', action='store_true')
    a = ap.parse_args()
    build(a.out, readme=not a.no_readme, check=a.check)
