"""REST API of the marketplace: providers' products and versions, staff review, and
the public catalog. Thin views over marketplace.services and marketplace.selectors."""
