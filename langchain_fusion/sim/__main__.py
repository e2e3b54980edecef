from langchain_fusion.sim._cli import main

raise SystemExit(main())
