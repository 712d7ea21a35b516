"""The notebook front end as users see it (slow suite): JupyterLab in headless Chromium renders the dashboard, its live
loss plot gains points while a tiny training runs, and a blind-review choice made by clicks is saved.

Needs the `browser` extra (`pip install -e ".[browser]"`: JupyterLab and Selenium) and Debian's `chromium` and
`chromium-driver` packages; `make browser-setup` installs both. Screenshots go to runs/browser-test/."""
import hashlib, json, re, os, shutil, socket, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT/'runs'/'browser-test'
pytestmark = pytest.mark.slow

def _missing():
    try: import selenium, jupyterlab  # noqa: F401
    except ImportError as e: return f"{e.name} is not installed: run `make browser-setup`"
    for exe in ('chromium', 'chromedriver'):
        if not shutil.which(exe): return f"{exe} is not on PATH: run `make browser-setup` (apt: chromium chromium-driver)"

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _notebook(path, out, ratings):
    cell = lambda src: dict(cell_type='code', metadata={}, execution_count=None, outputs=[], source=src)
    items = [dict(id=str(i), prompt=f"What was revenue in year {i}?", reference=f"{i}00 million",
                  answers=dict(base=f"About {i} dollars.", tuned=f"Revenue was {i}00 million.")) for i in (1, 2)]
    nb = dict(nbformat=4, nbformat_minor=5, cells=[
        cell("import torch; torch.set_num_threads(1)\n"
             "from domain_tuner.dashboard import dashboard\n"
             f"d = dashboard(out={str(out)!r}, builtin_examples=1000, train_limit=64, eval_limit=16, bench_limit=4,\n"
             "              max_new_tokens=8, max_steps=300, lr=3e-3, logging_steps=1)\nd"),
        cell("from domain_tuner.human_eval import review_widget\n"
             f"w = review_widget({items!r}, {str(ratings)!r}, 'browser', rubric=('correctness',))\nw")],
        metadata=dict(kernelspec=dict(name='python3', display_name='Python 3', language='python')))
    path.write_text(json.dumps(nb))

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on a free port, rooted in tmp_path, with its own settings and kernels (the server's Python)."
    if (why := _missing()): pytest.skip(why)
    settings = tmp_path/'lab-settings'
    for ext, body in {'@jupyterlab/apputils-extension/notification': dict(fetchNews='false', checkForUpdates=False),
                      '@jupyterlab/notebook-extension/tracker': dict(windowingMode='none')}.items():
        f = settings/f"{ext}.jupyterlab-settings"; f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(body))
    env = {**os.environ, 'JUPYTERLAB_SETTINGS_DIR': str(settings), 'JUPYTER_DATA_DIR': str(tmp_path/'jupyter-data'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path/'jupyter-runtime'), 'DOMAIN_TUNER_QUIET': '1', 'HF_HUB_OFFLINE': '1',
           'DOMAIN_TUNER_PRECISION': os.environ.get('DOMAIN_TUNER_PRECISION', 'fp32')}
    port, token = _free_port(), 'domain-tuner-browser-test'
    log = open(tmp_path/'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ip=127.0.0.1',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}',
                             *(['--allow-root'] if os.geteuid() == 0 else [])],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        up, t0 = False, time.time()
        while not up and proc.poll() is None and time.time() - t0 < 60:
            try: socket.create_connection(('127.0.0.1', port), timeout=1).close(); up = True
            except OSError: time.sleep(0.5)
        if not up: pytest.fail(f"JupyterLab did not start: {(tmp_path/'lab.log').read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which('chromium')
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--window-size=1400,3000'):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=opts)
    yield drv
    drv.quit()

def _wait(cond, timeout, what, poll=0.2):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if (v := cond()): return v
        except Exception: pass  # the element is being re-rendered: try again
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

def test_dashboard_live_plot_and_review_click_in_jupyterlab(lab, browser, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    try: _drive(browser, *lab, tmp_path)
    except BaseException:
        browser.save_screenshot(str(SHOTS/'failed.png')); (SHOTS/'failed.html').write_text(browser.page_source)
        print(f"JupyterLab's log:\n{(tmp_path/'lab.log').read_text()[-3000:]}\nscreenshot: {SHOTS/'failed.png'}")
        raise

def _drive(drv, url, token, tmp_path):
    from selenium.webdriver.common.by import By
    ratings = tmp_path/'ratings.jsonl'
    _notebook(tmp_path/'widgets.ipynb', tmp_path/'dash', ratings)
    X = lambda xp: drv.find_elements(By.XPATH, xp)
    drv.get(f"{url}/lab/tree/widgets.ipynb?token={token}")
    _wait(lambda: X("//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']"), 120, "JupyterLab's menu bar")
    # Run > Run All Cells once the kernel says Idle; again if the cells did not start (a click before it connected)
    idle = lambda: [e for e in X("//*[contains(@class,'jp-StatusBar')]//*[contains(text(),'Idle')]")]
    started = lambda: [e for e in X("//*[contains(@class,'jp-InputPrompt')]") if e.text.strip() not in ('', '[ ]:')]
    for attempt in range(3):
        _wait(idle, 120, "the kernel to be idle")
        X("//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']")[0].click()
        _wait(lambda: X("//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']"), 10, "the Run menu")
        X("//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']")[0].click()
        try: _wait(started, 20, "the cells to start"); break
        except AssertionError:
            if attempt == 2: raise

    # the dashboard renders from the kernel's widget state: the Train button and the memory plan
    train = lambda: [b for b in X("//button[contains(@class,'jupyter-button')]") if b.text.strip() == 'Train']
    _wait(train, 180, "the dashboard's Train button (a widget rendered by the front end)")
    _wait(lambda: 'trainable' in drv.page_source, 30, "the memory plan")
    drv.save_screenshot(str(SHOTS/'1-dashboard.png'))

    # Train: while the button is disabled, the plot inside the dashboard's Output widget is redrawn with more points
    imgs = lambda: [e.get_attribute('src') for e in X("//div[contains(@class,'widget-output')]//img")]
    train()[0].click()
    _wait(lambda: train()[0].get_attribute('disabled'), 30, "the Train button to be disabled while training")
    seen, t0 = [], time.time()
    while train()[0].get_attribute('disabled') and time.time() - t0 < 600:
        for src in imgs():
            h = hashlib.sha1(src.encode()).hexdigest()
            if h not in seen:
                seen.append(h)
                if len(seen) == 2: drv.save_screenshot(str(SHOTS/'2-training.png'))
        time.sleep(0.2)
    assert len(seen) >= 3, f"the live loss plot was drawn {len(seen)} distinct times during training, expected at least 3"
    _wait(lambda: 'Benchmark (' in drv.page_source, 600, "the benchmark table after training")
    status = _wait(lambda: re.findall(r"trained \d+ steps in [^\n]*", drv.find_element(By.TAG_NAME, 'body').text), 30,
                   "the training summary")
    assert 'trained 300 steps' in status[0], status
    drv.save_screenshot(str(SHOTS/'3-trained.png'))

    # review: score A 4 and B 2 on correctness, prefer A, save; the choice lands in the ratings file
    def click(text, nth=0):
        b = [e for e in X("//button") if e.text.strip() == text]
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", b[nth]); b[nth].click()
    _wait(lambda: [e for e in X("//button") if e.text.strip() == 'Save and next'], 60, "the review widget")
    header = _wait(lambda: [e.text for e in X("//*[starts-with(normalize-space(text()),'Item 1 of 2')]")], 10,
                   "the review header")
    click('4', 0); click('2', 1); click('A is better'); time.sleep(0.5)
    drv.save_screenshot(str(SHOTS/'4-review-choice.png'))
    click('Save and next')
    _wait(lambda: 'Saved item' in drv.page_source, 30, "the saved-item message")
    _wait(lambda: 'Item 2 of 2' in drv.page_source, 10, "the next item")
    drv.save_screenshot(str(SHOTS/'5-review-saved.png'))
    rows = [json.loads(l) for l in ratings.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]['rater'] == 'browser' and rows[0]["id"] == "1", rows
    a, b = rows[0]['A'], rows[0]['B']
    assert rows[0]['scores'][a]['correctness'] == 4 and rows[0]['scores'][b]['correctness'] == 2, rows
    assert rows[0]['winner'] == a, rows
    print(f"browser test: {header[0]!r}; plot drawn {len(seen)} times during training; {status[0]}; "
          f"screenshots in {SHOTS}")
