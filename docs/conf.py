"""Sphinx configuration of the course site. Build it with `scsam-lite site` (docs/contributing.md, "The site"):
the command stages the README, these pages and the executed notebooks into one folder and builds that with
`-c docs`, so this file is not read from docs/ itself."""

from scsam_lite import REPO_URL, __version__

project = "scsam-lite"
author = "the scsam-lite authors"
copyright = "the scsam-lite authors, MIT license"
version = release = __version__

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
root_doc = "index"

# the notebooks were executed before the build (`scsam-lite notebooks`) or are shown without outputs
nb_execution_mode = "off"
# `[the two tiers](contributing.md#tests)`: GitHub-style anchors for headings down to ###
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "scsam-lite"
html_theme_options = {
    "repository_url": REPO_URL,
    "repository_branch": "main",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
}
