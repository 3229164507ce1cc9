# adapters/stripe.cmake -- the Stripe provider (stripe.c, libcurl + jansson,
# both already in brhttp's dependencies), added to brhttp so the server links
# it with the other providers. Its payment -> intent map goes through the
# PostgreSQL adapter (br_pg_stripe_intent_get/put), hence brpg.
target_sources(brhttp PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/stripe.c)
target_link_libraries(brhttp PUBLIC brpg)
