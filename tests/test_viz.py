"""kedro-viz on a real, quick run: the API, the page rendered by headless Chromium, the static
build, previews, and a quiet, TensorFlow-free `kedro registry list`.

Everything the tests expect comes from the project itself (the registry and
``fashion_cnn.variants.load_variants()``, read in the project copy), never from a list here.
One module-scoped project copy gets one quick run of ``RUN_VARIANT``, then `kedro viz build` and
one kedro-viz server (its own process group on a free 127.0.0.1 port, stopped and checked at
teardown). To keep the module short, independent commands run side by side in the background
(each in its own process group, always stopped): the registry probe and a failing run during
the quick run, the static build during the server's start.

The kedro commands run without KEDRO_DISABLE_TELEMETRY: the consent stored in the project
(`.telemetry`) is what keeps them offline.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import QUICK, copy_project, serve_folder

RUN_VARIANT = "cnn"  # the notebook's main model; the quick run and the previews use it
LAYERS = ["raw", "intermediate", "model_input", "models", "model_output", "reporting"]
# TensorFlow's CUDA probe lines on a machine without a GPU (see fashion_cnn.runtime.quiet).
TF_NOISE = ("absl::InitializeLog()", "cudart_stub.cc", "failed call to cuInit")
PREVIEW_TYPES = {"JSONDataset": "JSONPreview", "CSVDataset": "TablePreview", "MatplotlibDataset": "ImagePreview"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # The page links Google Fonts; fail that lookup at once instead of reaching for the network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SERVER_START_TIMEOUT = 180  # seconds; kedro-viz imports TensorFlow (the model dataset) on start


def kedro_env() -> dict[str, str]:
    """A user's shell: the test's environment minus what would hide the behaviour under test, and
    minus the TensorFlow settings that in-process Kedro sessions of other tests left in os.environ."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK", "FASHION_CNN_TF_NOISE", "KEDRO_LOGGING_CONFIG",
                 "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        env.pop(name, None)
    return env


class Background:
    """A command started now in its own process group, output in files; :meth:`result` waits for it."""

    def __init__(self, args: list[str], cwd: Path, name: str) -> None:
        self.args = args
        self.stdout_path, self.stderr_path = cwd.parent / f"{name}.out", cwd.parent / f"{name}.err"
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(args, cwd=cwd, env=kedro_env(), stdout=stdout, stderr=stderr,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return f"{self.stdout_path.read_text()[-3000:]}\n{self.stderr_path.read_text()[-3000:]}"

    def result(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"{' '.join(self.args)} did not finish in {timeout} s:\n{self.output()}")
        finally:
            self.stop()  # whatever it left behind in its group
        return subprocess.CompletedProcess(self.args, self.process.returncode,
                                           self.stdout_path.read_text(), self.stderr_path.read_text())

    def stop(self) -> None:
        stop_process_group(self.process)


def params_arg(params: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in params.items())


def free_port() -> int:
    """A free 127.0.0.1 port below 49152: kedro-viz refuses the ephemeral range the OS hands out."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 49000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free TCP port between 20000 and 49000")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group of ``process`` (started with ``start_new_session``), then SIGKILL;
    return once no process of the group is left (or after ``grace`` + 10 seconds)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while True:
            process.poll()  # reap the leader: a zombie still counts as a member of its group
            if not group_alive(process.pid):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    process.poll()


# Printed as JSON by a subprocess in the project copy: what the project registers, without CLI plugins.
REGISTRY_PROBE = """
import json, sys, time
from pathlib import Path
from kedro.framework.startup import bootstrap_project
start = time.perf_counter()
bootstrap_project(Path.cwd())
from kedro.framework.project import pipelines
registry = {name: sorted(n.name for n in pipelines[name].nodes) for name in pipelines}
seconds = time.perf_counter() - start
from fashion_cnn.variants import load_variants
variants = {name: list(spec.get("tags") or []) for name, spec in load_variants().items()}
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(json.dumps({"registry": registry, "variants": variants, "heavy": heavy, "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def viz_project(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Path:
    path = copy_project(tmp_path_factory.mktemp("viz") / "project")
    telemetry = (path / ".telemetry").read_text() if (path / ".telemetry").exists() else ""
    assert "consent: false" in telemetry, "the project must store its telemetry consent (.telemetry)"
    return path


@pytest.fixture(scope="module")
def early(viz_project: Path, tmp_path_factory: pytest.TempPathFactory):
    """Started before the quick run, beside it: the registry probe, and a run that fails after
    TensorFlow is imported (in a second project copy, which has its own tracking store)."""
    failing_project = copy_project(tmp_path_factory.mktemp("viz-failing") / "project")
    started = {
        "probe": Background([sys.executable, "-c", REGISTRY_PROBE], viz_project, "probe"),
        "failing": Background(
            # A setting caught by the spec check, after TensorFlow is imported (`data.*` settings
            # are checked before, without it).
            ["kedro", "run", "--pipelines", RUN_VARIANT, "--params", "activation_grid.filter_index=99"],
            failing_project, "failing",
        ),
    }
    yield started
    for background in started.values():
        background.stop()


@pytest.fixture(scope="module")
def probe(early) -> dict:
    result = early["probe"].result(timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert RUN_VARIANT in found["variants"], f"the tests run `{RUN_VARIANT}`, which is no longer a variant"
    return found


@pytest.fixture(scope="module")
def quick_run(viz_project: Path, early) -> subprocess.CompletedProcess:
    """`kedro run --pipelines <RUN_VARIANT>` on a small subset, as a user would type it."""
    params = {**QUICK, f"{RUN_VARIANT}.training.epochs": 1, f"{RUN_VARIANT}.training.verbose": 0}
    run = Background(["kedro", "run", "--pipelines", RUN_VARIANT, "--params", params_arg(params)],
                     viz_project, "quick-run")
    result = run.result(timeout=300)
    assert result.returncode == 0, f"kedro run failed:\n{run.output()}"
    return result


@pytest.fixture(scope="module")
def viz_build(viz_project: Path, quick_run):
    """`kedro viz build --include-previews`, started after the run, beside the server's start."""
    build = Background(["kedro", "viz", "build", "--include-previews"], viz_project, "viz-build")
    yield build
    build.stop()


@pytest.fixture(scope="module")
def viz_server(viz_project: Path, quick_run, viz_build):
    """`kedro viz run` on 127.0.0.1:<free port>, in its own process group; yields (base URL, stderr file)."""
    port = free_port()
    server = Background(
        ["kedro", "viz", "run", "--host", "127.0.0.1", "--port", str(port), "--no-browser"], viz_project, "viz"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            # kedro-viz moves to the next port if ours was taken meanwhile; follow what it prints.
            announced = re.search(r"http://127\.0\.0\.1:(\d+)", server.stdout_path.read_text())
            if announced:
                port = int(announced.group(1))
                base = f"http://127.0.0.1:{port}"
            try:
                get_json(f"{base}/api/main")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                if server.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"kedro viz did not serve {base}/api/main "
                                f"(exit code {server.process.returncode}):\n{server.output()}")
                time.sleep(0.5)
        yield base, server.stderr_path
    finally:
        server.stop()
    assert not group_alive(server.process.pid), "kedro viz's process group survived SIGTERM and SIGKILL"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still accepts connections"


@pytest.fixture(scope="module")
def api(viz_server) -> dict:
    base, _ = viz_server
    return get_json(f"{base}/api/main")


def data_nodes(api: dict) -> list[dict]:
    return [n for n in api["nodes"] if n["type"] == "data"]


def short_type(node: dict) -> str:
    return (node.get("dataset_type") or "").rsplit(".", 1)[-1]


# ---------------------------------------------------------------- registry, CLI speed, quiet run


def test_the_registry_loads_without_tensorflow(probe):
    assert probe["heavy"] == [], f"loading the pipeline registry imported {probe['heavy']}"
    assert {"__default__", *probe["variants"]} <= set(probe["registry"])  # a pipeline per variant


def test_a_failing_run_shows_its_error_but_not_tensorflows_cuda_probe(early, quick_run):
    # `quick_run` only orders the fixtures: the failing run has been running beside it.
    result = early["failing"].result()
    assert result.returncode != 0
    # The real error, which only a built Keras model can give: TensorFlow was imported first.
    assert "`activation_grid.filter_index` 99 is not below the 32 channels" in " ".join(result.stderr.split()), \
        result.stderr[-3000:]
    assert not [line for line in result.stderr.splitlines() if any(n in line for n in TF_NOISE)]


def test_a_quick_run_prints_progress_but_not_tensorflows_cuda_probe(quick_run):
    assert not [line for line in quick_run.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    assert "Completed node" in quick_run.stdout and "Pipeline execution completed" in quick_run.stdout
    assert "as logging configuration" not in quick_run.stdout  # conf/logging.yml drops that line


# ---------------------------------------------------------------- the kedro-viz API


def test_viz_api_lists_every_registered_pipeline(api, probe):
    assert {p["id"] for p in api["pipelines"]} == set(probe["registry"])
    assert api["selected_pipeline"] == "__default__"


def test_each_variant_is_one_collapsible_namespace_holding_its_nodes(api, probe):
    modular = api["modular_pipelines"]
    root_children = {(c["id"], c["type"]) for c in modular["__root__"]["children"]}
    tasks = [n for n in api["nodes"] if n["type"] == "task"]
    for variant in probe["variants"]:
        assert variant in modular, f"no namespace `{variant}` in kedro-viz"
        assert (variant, "modularPipeline") in root_children
        in_namespace = {n["full_name"] for n in tasks if variant in (n.get("modular_pipelines") or [])}
        registered = {name for name in probe["registry"][variant] if name.startswith(f"{variant}.")}
        assert in_namespace == registered and registered


def test_datasets_sit_in_the_notebooks_layers(api):
    assert api["layers"] and api["layers"] == [layer for layer in LAYERS if layer in api["layers"]]
    unlayered = [
        n["name"] for n in data_nodes(api) if n.get("layer") is None and short_type(n) != "MemoryDataset"
    ]
    assert not unlayered, f"persisted datasets without `metadata: kedro-viz: layer`: {unlayered}"
    for node in data_nodes(api):
        assert node.get("layer") in (None, *LAYERS), node


def test_tags_filter_each_variant_and_each_group(api, probe):
    tag_ids = {t["id"] for t in api["tags"]}
    groups = {tag for tags in probe["variants"].values() for tag in tags}  # baseline, exercise, ...
    assert set(probe["variants"]) | groups <= tag_ids
    tasks = [n for n in api["nodes"] if n["type"] == "task"]
    for variant, tags in probe["variants"].items():  # every step of a variant carries all its tags
        for node in tasks:
            if variant in (node.get("modular_pipelines") or []):
                assert {variant, *tags} <= set(node["tags"]), node["full_name"]
    for tag in set(probe["variants"]) | groups:  # and a tag selects exactly its variants' namespaces
        expected = {v for v, tags in probe["variants"].items() if tag == v or tag in tags}
        tagged = {ns for n in tasks if tag in n["tags"] for ns in (n.get("modular_pipelines") or [])}
        assert tagged & set(probe["variants"]) == expected, f"tag `{tag}` selects {tagged}, not {expected}"


def test_the_served_page_has_no_telemetry(viz_server):
    base, _ = viz_server
    with urllib.request.urlopen(f"{base}/", timeout=30) as response:
        html = response.read().decode()
    assert '<div id="root">' in html
    assert "heap" not in html.lower()  # consent: false in .telemetry, so no Heap analytics script


def test_the_viz_server_does_not_print_tensorflows_cuda_probe(viz_server):
    _, stderr_path = viz_server
    assert not [line for line in stderr_path.read_text().splitlines() if any(n in line for n in TF_NOISE)]


def test_after_a_run_json_csv_and_figures_preview(viz_server, api, viz_project):
    base, _ = viz_server
    previewed: dict[str, str] = {}
    for node in data_nodes(api):
        expected = PREVIEW_TYPES.get(short_type(node))
        if RUN_VARIANT not in node["pipelines"] or expected is None:
            continue
        meta = get_json(f"{base}/api/nodes/{node['id']}")
        if not Path(meta.get("filepath") or "/nonexistent").exists():
            continue  # not written by the quick run
        assert meta.get("preview_type") == expected and meta.get("preview"), f"{node['name']}: {meta}"
        if expected == "ImagePreview":
            assert base64.b64decode(meta["preview"])[:8] == b"\x89PNG\r\n\x1a\n", node["name"]
        if expected == "JSONPreview":
            json.loads(meta["preview"])
        if expected == "TablePreview":
            assert meta["preview"]["columns"] and meta["preview"]["data"], node["name"]
        previewed[node["name"]] = expected
    assert previewed.get(f"{RUN_VARIANT}.metrics") == "JSONPreview", previewed
    assert "TablePreview" in previewed.values() and "ImagePreview" in previewed.values(), previewed
    figures = {n["name"] for n in data_nodes(api)
               if short_type(n) == "MatplotlibDataset" and n["name"].startswith(f"{RUN_VARIANT}.")}
    assert figures <= set(previewed), f"figures of the run without a preview: {figures - set(previewed)}"


# ---------------------------------------------------------------- the page in headless Chromium


class _GraphNodes(HTMLParser):
    """Collects (type, full name) of the graph's nodes: `<g class="pipeline-node ..." data-node-...>`."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: set[tuple[str, str]] = set()
        self.classes: set[str] = set()
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        self.classes.update(classes)
        if tag == "g" and "pipeline-node" in classes and "data-node-fullname" in attributes:
            self.nodes.add((attributes.get("data-node-type"), attributes["data-node-fullname"]))
        if tag == "img" and (attributes.get("src") or "").startswith("data:image/png;base64,"):
            self.images.append(attributes["src"])


def rendered(url: str, tmp_path: Path) -> _GraphNodes:
    """The DOM of ``url`` after the React app rendered it, from `chromium --headless --dump-dom`."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's `chromium` is not installed: run `apt-get install -y chromium` (as .ci/run does).")
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    profile.mkdir()
    # Virtual time runs the page's timers without waiting for them; network fetches pause it.
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=30000",
               "--dump-dom", url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        dom, errors = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish loading {url} in 120 s")
    finally:
        stop_process_group(process, grace=5)
    assert process.returncode == 0 and dom, f"chromium failed on {url}: {errors[-3000:]}"
    parser = _GraphNodes()
    parser.feed(dom)
    return parser


def test_chromium_renders_the_default_graph_with_one_collapsed_namespace_per_variant(viz_server, api, probe,
                                                                                     tmp_path):
    base, _ = viz_server
    page = rendered(f"{base}/", tmp_path)
    namespaces = {("modularPipeline", variant) for variant in probe["variants"]}
    assert namespaces <= page.nodes, f"missing: {namespaces - page.nodes}"
    by_id = {n["id"]: n for n in api["nodes"]}
    top_level = {  # the data processing steps and their datasets, outside any namespace
        (by_id[child["id"]]["type"], by_id[child["id"]]["name"])
        for child in api["modular_pipelines"]["__root__"]["children"]
        if child["id"] in by_id and by_id[child["id"]]["type"] in ("task", "data")  # parameters are hidden
    }
    assert top_level and top_level <= page.nodes, f"missing: {top_level - page.nodes}"


def test_chromium_renders_a_variants_steps_and_a_figure_in_the_side_panel(viz_server, api, probe, tmp_path):
    base, _ = viz_server
    figure = next(n for n in data_nodes(api)
                  if RUN_VARIANT in n["pipelines"] and short_type(n) == "MatplotlibDataset")
    page = rendered(f"{base}/?pid={RUN_VARIANT}&expandAllPipelines=true&sid={figure['id']}", tmp_path)
    tasks = {("task", name.rsplit(".", 1)[-1]) for name in probe["registry"][RUN_VARIANT]}
    datasets = {("data", n["name"]) for n in data_nodes(api) if RUN_VARIANT in n["pipelines"]}
    assert tasks <= page.nodes, f"steps missing from the page: {tasks - page.nodes}"
    assert datasets <= page.nodes, f"datasets missing from the page: {datasets - page.nodes}"
    assert "pipeline-metadata--visible" in page.classes  # the side panel is open on the figure
    assert page.images and base64.b64decode(page.images[0].split(",", 1)[1])[:4] == b"\x89PNG"


# ---------------------------------------------------------------- the static site


def test_kedro_viz_build_writes_a_static_site_with_the_api_and_previews(viz_project, viz_build, probe, tmp_path):
    result = viz_build.result()
    assert result.returncode == 0, viz_build.output()
    assert not [line for line in result.stderr.splitlines() if any(n in line for n in TF_NOISE)]
    build = viz_project / "build"
    assert '<div id="root">' in (build / "index.html").read_text()
    main = json.loads((build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(probe["registry"])
    for name in probe["registry"]:
        assert json.loads((build / "api" / "pipelines" / name).read_text())["selected_pipeline"] == name
    metrics = next(n for n in main["nodes"] if n["name"] == f"{RUN_VARIANT}.metrics")
    node = json.loads((build / "api" / "nodes" / metrics["id"]).read_text())
    assert node["preview_type"] == "JSONPreview" and "test_accuracy" in json.loads(node["preview"])

    # The folder is the whole site: served as plain files, it renders the variant's steps.
    with serve_folder(build) as base:
        page = rendered(f"{base}/?pid={RUN_VARIANT}&expandAllPipelines=true", tmp_path)
    tasks = {("task", name.rsplit(".", 1)[-1]) for name in probe["registry"][RUN_VARIANT]}
    assert tasks <= page.nodes, f"steps missing from the static site: {tasks - page.nodes}"
