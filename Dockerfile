# hotdeal in a container: the release binary on a slim Debian. The same
# image runs every role (`--role`); see deploy/compose/compose.yaml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hotdeal \
 && cp target/release/hotdeal /usr/local/bin/hotdeal

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/hotdeal --create-home hotdeal
COPY --from=build /usr/local/bin/hotdeal /usr/local/bin/hotdeal
USER hotdeal
WORKDIR /var/lib/hotdeal
ENV HOTDEAL_LISTEN=0.0.0.0:8080 HOTDEAL_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090 50051
ENTRYPOINT ["hotdeal"]
CMD ["serve"]
