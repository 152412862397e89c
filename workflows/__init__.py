"""One function per workflow verb (launch, pause, resume, cancel, close, approve, reject, answer, retry, waive,
re-check, build an environment): the only code the admin, the pages, the API and the commands call to change what
happens in a mission. Each checks who may act, calls the services and the engine, and records nothing itself that
a service does not record."""
