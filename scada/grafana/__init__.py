"""Grafana for a site: provisioning files (``scada grafana export``) and upload (``scada grafana push``).

- :mod:`scada.grafana.model` builds the InfluxDB data source and the
  dashboards (district overview, one per building, channel health) from the
  site configuration;
- :mod:`scada.grafana.queries` writes their InfluxQL over the historian's
  schema;
- :mod:`scada.grafana.export` writes them as provisioning files;
- :mod:`scada.grafana.push` uploads them through Grafana's HTTP API
  (``grafana-client``, the optional ``grafana`` extra).
"""
