"""The notebook layer: ``%%twister2``/``%twister2`` magics and the job dashboard
widget. (The graph view they show is the API's, :mod:`~twister_nb.tset.graph`,
so that ``tset.visualize()`` works without this layer.)

Load it with ``%load_ext twister_nb``. The modules:

* :mod:`~twister_nb.notebook.progress` -- job events to dashboard state (no widgets),
* :mod:`~twister_nb.notebook.dashboard` -- the ipywidgets dashboard drawing that state,
* :mod:`~twister_nb.notebook.session` -- the notebook's job, created, reused or attached,
* :mod:`~twister_nb.notebook.cell` -- running a ``%%twister2`` cell (plain functions),
* :mod:`~twister_nb.notebook.awaited` -- a foreground cell's work in a thread the
  kernel's loop awaits, so its widgets answer a reloaded page while it runs,
* :mod:`~twister_nb.notebook.recorder` -- a cell's action hook, and a dry run's offline job,
* :mod:`~twister_nb.notebook.commands` -- the ``%twister2`` subcommands, over
  :class:`twister_nb.jobs.JobClient` (plain functions),
* :mod:`~twister_nb.notebook.magics` -- the IPython magics that only parse and hand off.
"""
