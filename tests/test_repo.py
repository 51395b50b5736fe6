"The project's own promises: README commands are what CI runs, nbdev settings, Quarto config, console command."
import configparser, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def readme_commands() -> list[str]:
    "The shell lines of the first ```sh block of README.md (install, test, main job)."
    block = re.search(r"```sh\n(.*?)```", (ROOT/'README.md').read_text(), re.S)
    assert block, "README.md has no ```sh block with the install/test/run commands"
    return [l.strip() for l in block[1].splitlines() if l.strip() and not l.startswith('#')]

def test_readme_has_install_test_and_main_job():
    cmds = readme_commands()
    assert len(cmds) == 3
    assert 'pip install -e ".[dev]"' in cmds[0] and 'venv' in cmds[0]
    assert 'nbdev_test' in cmds[1] and 'pytest' in cmds[1]
    assert 'diversification reproduce' in cmds[2]

def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    ci = (ROOT/'.ci'/'run').read_text().splitlines()
    for cmd in readme_commands()[:2]: assert cmd in ci, f".ci/run does not run the README command: {cmd}"
    assert 'set -euo pipefail' in ci

def test_settings_ini():
    c = configparser.ConfigParser(); c.read(ROOT/'settings.ini'); d = c['DEFAULT']
    assert d['lib_name'] == d['lib_path'] == 'diversification' and d['nbs_path'] == 'nbs'
    assert d['recursive'] == 'True' and d['tst_flags'] == 'slow cuda' and d['cell_number'] == 'False'
    assert d['clear_all'] == 'False' and d['readme_nb'] == 'index.ipynb'
    import diversification
    assert diversification.__version__ == d['version']

def test_quarto_config_has_one_source():
    nbs_q = ROOT/'nbs'/'_quarto.yml'
    assert nbs_q.is_symlink() and nbs_q.resolve() == (ROOT/'_quarto.yml').resolve()

def test_pins_live_in_package_metadata():
    import tomllib
    meta = tomllib.loads((ROOT/'pyproject.toml').read_text())
    dev = meta['project']['optional-dependencies']['dev']
    for pin in ('torch==2.14.1', 'torchvision==0.29.1', 'timm==1.0.31', 'fastai==2.8.7', 'nbdev==2.4.14'): assert pin in dev
    assert 'pkg_resources' not in (ROOT/'pyproject.toml').read_text()

def test_console_command_lists_experiments():
    exe = Path(sys.executable).parent/'diversification'   # the console script installed by pip
    out = subprocess.run([str(exe), 'list'], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert 'baseline_classification' in out.stdout and 'baseline_segmentation' in out.stdout

def test_readme_figures_exist():
    "README.md shows the saved figure of nbs/index.ipynb (a notebook committed without outputs would drop it)."
    figs = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', (ROOT/'README.md').read_text())
    assert figs, "README.md has no figure: execute nbs/index.ipynb before committing"
    for f in figs: assert (ROOT/f).exists(), f
