from modalrec.cli.main import main

raise SystemExit(main())
