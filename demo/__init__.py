"""What shows obslink working without hardware: ``obslink demo`` (:mod:`.run`), simulated
loggers and data acquisition units (:mod:`.simulator`, :mod:`.simulated_cma`,
:mod:`.simulated_tob1`) and a throw-away Mosquitto on a free port (:mod:`.broker`). Tests
and benchmarks use them too; a gateway or a collector never imports them."""
