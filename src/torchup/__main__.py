from torchup.cli.main import main

raise SystemExit(main())
