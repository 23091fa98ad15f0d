"""The offline bundle: what an air-gapped site needs (`plan`), fetched and verified (`build`), and loaded
into a repository host (`load`)."""
