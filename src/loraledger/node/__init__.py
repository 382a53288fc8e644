"""The node: settings → services (``context``), the daemon (API + epoch loop + job worker),
the job kinds it runs, and the client of a running node's API (``client``)."""
