from obslink.cli import main

raise SystemExit(main())
