"""`python -m langchain_fusion`: the `fusion` command."""

from langchain_fusion.cli import main

raise SystemExit(main())
