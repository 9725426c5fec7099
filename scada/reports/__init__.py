"""Reports for a building and a billing period: apartment meters, building meters, balance.

- :mod:`scada.reports.ipu`: per apartment and resource, the billing pull's readings and consumption;
- :mod:`scada.reports.odpu`: building meters, heat in Gcal and kWh, mean temperatures, abnormal hours;
- :mod:`scada.reports.balance`: ОДПУ against ΣИПУ per hour, day or month (B's numba kernels);
- :mod:`scada.reports.export`: CSV (1C, Excel) and XLSX writers shared by every export of the API;
- :mod:`scada.reports.i18n`: every user-visible string, Russian and English;
- :mod:`scada.reports.units`: unit conversions (Gcal, kWh, litres).

``GET /api/v1/reports/{kind}`` (:mod:`scada.api.reports`) serves them.
"""

#: The report kinds of ``GET /api/v1/reports/{kind}``.
KINDS = ("ipu", "odpu", "balance")
