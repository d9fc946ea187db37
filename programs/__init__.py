"""The program layer: what spans several programs. Start reading here:

- registry.py     the programs linewatch ships and the settings class of each
- demo.py         `linewatch-demo`: synthetic cameras, a worker, the live view, in one process
- settings_doc.py the README's settings tables and linewatch/program_variables.py, generated from
                  the settings classes (`python -m programs.settings_doc --write`)

The top layer: it may import every package (linewatch/, worker/, producer/, model_store/, view/),
and none of them imports it (tests/test_layers.py). A program's own start-up is
linewatch/startup.py, not here.
"""
