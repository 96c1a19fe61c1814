"""Bundled training tasks (offline, seedable, honouring ``params.data_fraction``). Copy one to start your own.

Each module has ``train(params, reporter) -> {"heldout": float, "n_train": int, "loss_init": float,
"loss_trivial": float}`` (the training loss before the first step, and the best constant predictor's),
decorated with ``@task(supports_data_fraction=True)``, and a ``DEFAULTS`` dict of the hyperparameters it
reads (any other name in ``params.values`` is an error; ``params.values["untuned"]``, a mapping,
overrides ``DEFAULTS`` for the names the search space does not set). The optimizer is built from
``params.param_groups(model)`` and ``params.apply_dropout(model)`` sets dropout, so per-layer settings
reach the model by module name.

- ``digits_mlp``: ``fc1, drop1, fc2, drop2, fc3`` (64→256→256→10) on scikit-learn's digits; budget in
  epochs; held-out accuracy (maximize). The quickstart task.
- ``digits_cnn``: ``conv1, conv2, drop1, fc1, drop2, fc2`` on the digits; epochs; accuracy (maximize).
- ``char_lm``: ``tok_emb, pos_emb, blocks.{i}.attn.{qkv,proj,drop}, blocks.{i}.mlp.{fc1,fc2,drop},
  head`` on ``pydoc_data.topics``; epochs of ``steps_per_epoch`` steps; held-out bits/char (minimize).
- ``teacher_student``: student ``fc1, drop1, fc2, drop2, fc3`` learning a random teacher MLP; epochs;
  held-out error rate against the clean teacher (minimize).
- ``digits_deep_mlp`` (``fc1 … fc6``, ``drop``) and ``digits_deep_cnn`` (``conv1 … conv4``, ``drop``,
  ``fc1``, ``fc2``): deep enough for TempBalance (4 balanced layers); epochs; accuracy (maximize).

In-training helpers (every task; ``objectives/_training.py``): ``schedule`` (``constant`` | ``cosine``),
``balance`` (``none`` | ``tempbalance``, with ``balance_map``) and ``freeze`` (``none`` | ``early``, with
``freeze_tolerance``), all off by default; when on, the task returns what they did under ``training``.

Data knobs (hyperparameters, set under ``fixed:``): ``label_noise`` (digits: fraction of training labels
flipped to another class) and ``data_seed`` (digits, teacher_student: fixes the training data for every
trial instead of the trial's seed). The over-fitting scenarios ``conf/objective/{digits_noisy,
teacher_student_noisy,char_lm_small}.yaml`` use them. ``decay_bias_and_norm`` and ``decay_follows_lr_mult``
(every task) reach ``Params.param_groups``; the ``*_adamw`` search spaces tune AdamW.
"""
